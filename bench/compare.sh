#!/usr/bin/env bash
# compare.sh: the same workloads on a plain directory, on a mysecure mount
# and on gocryptfs, in one run; medians and ratios as Markdown.
#
#   bash bench/compare.sh          (from anywhere; needs root, /dev/fuse,
#                                   gocryptfs, mariadb-server, sysbench, perf for profiles;
#                                   about 16 minutes on 2 CPUs)
#   QUICK=1 bash bench/compare.sh  (about 2.5 minutes: smaller sizes, shorter runs, no profiles)
#
# Builds ./cmd/mysecure and bench/cmd/compare into a fresh work dir in
# /var/tmp (the real disk: a datadir would not live on tmpfs) and runs
# compare there; see bench/cmd/compare for what is measured and how. The
# full output goes to bench/out/compare-TIMESTAMP.txt and, with PROFILE=1
# (the default), the perf data and call graphs to bench/out/compare-TIMESTAMP/
# (both git-ignored). The perf data name binaries by build id; perf keeps
# copies in ~/.debug, so `perf report -i FILE` works after the work dir is gone.
#
# Nothing here fails on a missed target: compare prints "met" or "NOT met".
# The script exits non-zero only when something could not be run. On every
# exit, Ctrl-C included, servers are stopped, everything mounted below the
# work dir is unmounted and the work dir is removed.
#
# Environment (defaults; QUICK=1 defaults in brackets):
#   REPS 3 [1], SIZE_MIB 512 [64], TREE /usr/local/go/src [/usr/local/go/src/crypto],
#   TARGETS plain,mysecure,gocryptfs,mysecure-admin, FILES 1 (the file workloads), SYSBENCH 1,
#   SB_TIME 20 [5], SB_TABLES 4, SB_ROWS 20000 [2000], SB_THREADS 4,
#   PROFILE 1 [0], PROFILE_SB_TIME 10, WORKBASE /var/tmp, GO go,
#   MYSECURE_BIN (a mysecure binary to measure instead of building ./cmd/mysecure),
#   MYSECURE_B_BIN, MYSECURE_B_ENV (target mysecure-b, an A/B in one run: another
#   binary, e.g. built from a branch, and/or extra environment K=V,...; add
#   mysecure-b to TARGETS).
#
# Reference targets, FUSE servers without encryption (what any FUSE server
# costs on this machine; add them to TARGETS): gofuse-loopback (go-fuse's own
# example/loopback, built here from the go-fuse version in go.mod) and bindfs
# (C, libfuse; Debian package bindfs, installed when missing). E.g.
#   TARGETS=plain,mysecure,gofuse-loopback,bindfs FILES=0 REPS=5 PROFILE=0 bash bench/compare.sh
set -euo pipefail
shopt -s inherit_errexit

# Everything is in main, which bash reads whole before running it: editing
# this file during a run does not change the run.
main() {
	if [ "${QUICK:-0}" = 1 ]; then
		REPS=${REPS:-1}
		SIZE_MIB=${SIZE_MIB:-64}
		TREE=${TREE:-/usr/local/go/src/crypto}
		SB_TIME=${SB_TIME:-5}
		SB_ROWS=${SB_ROWS:-2000}
		PROFILE=${PROFILE:-0}
	fi
	REPS=${REPS:-3}
	SIZE_MIB=${SIZE_MIB:-512}
	TREE=${TREE:-/usr/local/go/src}
	TARGETS=${TARGETS:-plain,mysecure,gocryptfs,mysecure-admin}
	TARGETS=${TARGETS// /} # "plain, bindfs" as well as "plain,bindfs"
	FILES=${FILES:-1}
	SYSBENCH=${SYSBENCH:-1}
	SB_TIME=${SB_TIME:-20}
	SB_TABLES=${SB_TABLES:-4}
	SB_ROWS=${SB_ROWS:-20000}
	SB_THREADS=${SB_THREADS:-4}
	PROFILE=${PROFILE:-1}
	PROFILE_SB_TIME=${PROFILE_SB_TIME:-10}
	WORKBASE=${WORKBASE:-/var/tmp}
	GO=${GO:-go}

	cd "$(dirname "$0")/.."

	die() {
		echo "compare.sh: error: $*" >&2
		exit 1
	}
	[ "$(id -u)" -eq 0 ] || die "must run as root (FUSE mounts, drop_caches, mariadbd as mysql)"
	[ -c /dev/fuse ] || die "/dev/fuse is missing"
	for p in fusermount3 dd cp ls find; do
		command -v "$p" >/dev/null || die "$p is missing (scripts/setup-deps.sh installs it)"
	done
	case ",$TARGETS," in *,gocryptfs,*)
		command -v gocryptfs >/dev/null || die "gocryptfs is missing (scripts/setup-deps.sh installs it)"
		;;
	esac
	case ",$TARGETS," in *,bindfs,*)
		if ! command -v bindfs >/dev/null; then
			apt-get install -y -q bindfs >/dev/null || die "bindfs is missing and apt-get install bindfs failed (run apt-get update first?)"
		fi
		;;
	esac
	if [ "$SYSBENCH" = 1 ]; then
		for p in sysbench mariadb-install-db mariadb; do
			command -v "$p" >/dev/null || die "$p is missing (scripts/setup-deps.sh installs sysbench and mariadb-server)"
		done
	fi

	work=$(mktemp -d "$WORKBASE/mysecure-compare.XXXXXX")
	chmod 755 "$work" # mysqld (user mysql) traverses it to its datadir
	cpid=
	prof=
	cleanup() {
		local rc=$?
		trap - EXIT INT TERM
		if [ -n "$cpid" ] && kill -0 "$cpid" 2>/dev/null; then
			# compare cleans up itself on SIGTERM.
			kill -TERM "$cpid" 2>/dev/null || true
			wait "$cpid" 2>/dev/null || true
		fi
		# What compare could not clean up (it was killed): the servers it
		# started (pid files in the work dir), then every mount below the work
		# dir, deepest first.
		if [ -n "$prof" ] && [ -f "$work/perf.pids" ]; then
			while read -r pid; do
				# Only perf sessions of this run: they write into $prof.
				if tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$prof"; then
					kill -INT "$pid" 2>/dev/null || true
					sleep 1
					kill -KILL "$pid" 2>/dev/null || true
				fi
			done <"$work/perf.pids"
		fi
		for pf in "$work"/mysqld-*/mysqld.pid; do
			[ -f "$pf" ] || continue
			pid=$(cat "$pf")
			if tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$work"; then
				kill -KILL "$pid" 2>/dev/null || true
			fi
		done
		for m in $(awk -v w="$work" '$5 == w || index($5, w "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
			fusermount3 -u "$m" 2>/dev/null || umount "$m" 2>/dev/null || umount -l "$m" || true
		done
		if awk -v w="$work" 'index($5, w) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
			echo "compare.sh: warning: something is still mounted below $work; not removing it" >&2
		else
			rm -rf --one-file-system -- "$work"
		fi
		exit "$rc"
	}
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	stamp=$(date -u +%Y%m%dT%H%M%SZ)
	mkdir -p bench/out
	log=bench/out/compare-$stamp.txt
	if [ "$PROFILE" = 1 ]; then
		prof=$PWD/bench/out/compare-$stamp
	fi

	mkdir -p "$work/bin"
	if [ -n "${MYSECURE_BIN:-}" ]; then
		cp "$MYSECURE_BIN" "$work/bin/mysecure"
	else
		$GO build -o "$work/bin/mysecure" ./cmd/mysecure
	fi
	$GO build -o "$work/bin/compare" ./bench/cmd/compare
	if [ -n "${MYSECURE_B_BIN:-}" ]; then
		cp "$MYSECURE_B_BIN" "$work/bin/mysecure-b"
	fi
	case ",$TARGETS," in *,gofuse-loopback,*)
		$GO build -o "$work/bin/gofuse-loopback" github.com/hanwen/go-fuse/v2/example/loopback
		;;
	esac
	if [ -n "$prof" ]; then
		# Keep the exact daemon binary with its profiles.
		mkdir -p "$prof"
		cp "$work/bin/mysecure" "$prof/mysecure"
	fi

	{
		echo "# mysecure side-by-side benchmark: plain, mysecure, gocryptfs"
		echo
		echo "command: bash bench/compare.sh   (QUICK=${QUICK:-0} REPS=$REPS SIZE_MIB=$SIZE_MIB TREE=$TREE TARGETS=$TARGETS FILES=$FILES SYSBENCH=$SYSBENCH SB_TIME=$SB_TIME SB_TABLES=$SB_TABLES SB_ROWS=$SB_ROWS SB_THREADS=$SB_THREADS PROFILE=$PROFILE)"
		echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
		echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- 2>/dev/null || echo ' (working tree has changes)')${MYSECURE_BIN:+; mysecure binary: $MYSECURE_BIN}"
		echo "cpu:     $(nproc) x $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
		echo "memory:  $(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
		echo "disk:    $(findmnt -no SOURCE,FSTYPE -T "$work" | tr -s ' ')"
		echo "kernel:  $(uname -r)"
		echo "go:      $($GO version)"
		echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) at start"
		echo
	} | tee "$log"

	args=(-work "$work" -mysecure "$work/bin/mysecure" -reps "$REPS" -size-mib "$SIZE_MIB" -tree "$TREE"
		-targets "$TARGETS" -files="$([ "$FILES" = 1 ] && echo true || echo false)"
		-sysbench="$([ "$SYSBENCH" = 1 ] && echo true || echo false)"
		-sb-time "$SB_TIME" -sb-tables "$SB_TABLES" -sb-rows "$SB_ROWS" -sb-threads "$SB_THREADS"
		-profile-sb-time "$PROFILE_SB_TIME")
	if [ -n "$prof" ]; then
		args+=(-profile "$prof")
	fi
	if [ -n "${MYSECURE_B_BIN:-}" ]; then
		args+=(-mysecure-b "$work/bin/mysecure-b")
	fi
	if [ -n "${MYSECURE_B_ENV:-}" ]; then
		args+=(-mysecure-b-env "$MYSECURE_B_ENV")
	fi
	if [ -x "$work/bin/gofuse-loopback" ]; then
		args+=(-loopback "$work/bin/gofuse-loopback")
	fi

	start=$(date +%s)
	# compare prints progress on stderr and the report on stdout.
	"$work/bin/compare" "${args[@]}" > >(tee -a "$log") &
	cpid=$!
	rc=0
	wait "$cpid" || rc=$?
	cpid=
	{
		echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) at the end"
		echo "elapsed: $(($(date +%s) - start)) s"
		echo
		echo "full output: $log${prof:+; profiles: $prof}"
	} | tee -a "$log"
	exit "$rc"
}

main "$@"
exit
