#!/usr/bin/env bash
# acl.sh: what the access rules cost an allowed program, in one run.
#
#   bash bench/acl.sh          (from the repository root, or anywhere; needs root and /dev/fuse)
#
# Builds bench/cmd/aclbench (the FUSE server and harness) and
# bench/cmd/openread (the allowed program), then runs the harness: a real
# volume in /dev/shm (volume.Create), its rule file (acl.SaveRules), a real
# daemon (daemon.New, not mounted, no control socket) and one mysecure
# mount of the volume served by the harness, FILES small files in one
# category, and ROUNDS rounds of `openread DIR OPENS` (open, read, close,
# round robin) as a child process, with the rules off (allow everything,
# nobody identified), with the rules on (the mount calls the daemon's own
# (*daemon.Daemon).Authorize: about 20 rules plus openread's fingerprinted
# ALLOW rule) and on a plain tmpfs copy for reference. See
# bench/cmd/aclbench for how caches are kept fair.
#
# With PROFILE=1 the harness writes a CPU profile of the FUSE
# server per timed run, and this script prints the top of the rules-on
# profiles and what they add over the rules-off ones (pprof -diff_base).
# Profiles and the full output are kept in bench/out/acl-TIMESTAMP/ and
# bench/out/acl-TIMESTAMP.txt (git-ignored).
#
# Nothing here fails on a missed target: the harness reports, people judge.
# The script exits non-zero only when something could not be run. The mount
# is unmounted and the temp dir removed on exit, Ctrl-C included.
#
# Environment: ROUNDS (5), OPENS (10000), FILES (1000), SIZE (2048),
# PROFILE (0), GO (go).
set -euo pipefail
shopt -s inherit_errexit

ROUNDS=${ROUNDS:-5}
OPENS=${OPENS:-10000}
FILES=${FILES:-1000}
SIZE=${SIZE:-2048}
PROFILE=${PROFILE:-0}
GO=${GO:-go}

cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
	echo "acl.sh: error: must run as root (the benchmark mounts a FUSE filesystem with allow_other)" >&2
	exit 1
fi
if [ ! -c /dev/fuse ]; then
	echo "acl.sh: error: /dev/fuse is missing" >&2
	exit 1
fi

base=/dev/shm
if [ ! -d "$base" ] || [ ! -w "$base" ]; then
	base=${TMPDIR:-/tmp}
fi
work=$(mktemp -d "$base/mysecure-acl-bench.XXXXXX")
cleanup() {
	# The harness unmounts itself; this is for when it was killed.
	if mountpoint -q "$work/mnt" 2>/dev/null; then
		fusermount3 -u "$work/mnt" 2>/dev/null || umount -l "$work/mnt" || true
	fi
	rm -rf -- "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p bench/out
log=bench/out/acl-$stamp.txt
prof=bench/out/acl-$stamp
exec > >(tee "$log") 2>&1

echo "# mysecure access-rule overhead benchmark"
echo
echo "command: bash bench/acl.sh   (ROUNDS=$ROUNDS OPENS=$OPENS FILES=$FILES SIZE=$SIZE PROFILE=$PROFILE)"
echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- 2>/dev/null || echo ' (working tree has changes)')"
echo "cpu:     $(nproc) x $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
echo "kernel:  $(uname -r)"
echo "go:      $($GO version)"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)"
echo

mkdir -p "$work/bin"
$GO build -o "$work/aclbench" ./bench/cmd/aclbench
$GO build -o "$work/bin/openread" ./bench/cmd/openread

args=(-work "$work" -openread "$work/bin/openread" -rounds "$ROUNDS" -opens "$OPENS" -files "$FILES" -size "$SIZE")
if [ "$PROFILE" = 1 ]; then
	mkdir -p "$prof"
	args+=(-profile "$prof")
fi
"$work/aclbench" "${args[@]}"

if [ "$PROFILE" = 1 ]; then
	# Profiles carry their symbols; keep the binary next to them anyway
	# for later `go tool pprof` sessions.
	cp "$work/aclbench" "$prof/aclbench"
	$GO tool pprof -proto "$prof"/off-*.prof >"$prof/off.pb.gz" 2>/dev/null
	$GO tool pprof -proto "$prof"/on-*.prof >"$prof/on.pb.gz" 2>/dev/null
	echo "## CPU profile of the FUSE server, rules on (all rounds)"
	echo
	echo '```'
	$GO tool pprof -top -nodecount 25 "$prof/on.pb.gz" 2>/dev/null | sed -n '/^Showing top/,$p'
	echo '```'
	echo
	echo "## What rules on adds over rules off (pprof -diff_base, cumulative, top 25)"
	echo
	echo '```'
	$GO tool pprof -top -cum -nodecount 25 -diff_base "$prof/off.pb.gz" "$prof/on.pb.gz" 2>/dev/null | sed -n '/^Showing top/,$p'
	echo '```'
	echo
	echo "profiles: $prof/{on,off}-ROUND.prof, merged: $prof/{on,off}.pb.gz"
fi
echo "log saved in $log"
