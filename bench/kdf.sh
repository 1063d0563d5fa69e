#!/usr/bin/env bash
# kdf.sh: what the Argon2id cost of passphrase slots costs in time.
#
#   bash bench/kdf.sh          (from any directory)
#
# Times, REPS times each, `mysecure init` (one passphrase slot: one Argon2id run
# plus volume creation) and the unlock that every offline command pays
# (`mysecure file encrypt` of an empty file), for the default KDF
# (--kdf-memory 256 --kdf-time 3, 4 lanes) and for the cheap one the benchmarks
# use (--kdf-memory 64). Everything lives in a temp dir in /dev/shm (or $TMPDIR)
# that is removed on exit. Prints the exact commands and a Markdown table.
#
# Environment: REPS (5), GO (go).
set -euo pipefail

REPS=${REPS:-5}
GO=${GO:-go}

cd "$(dirname "$0")/.."

base=/dev/shm
if [ ! -d "$base" ] || [ ! -w "$base" ]; then
	base=${TMPDIR:-/tmp}
fi
work=$(mktemp -d "$base/mysecure-kdf-bench.XXXXXX")
cleanup() { rm -rf -- "$work"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

median() {
	sort -g | awk '{v[NR] = $1} END {
		if (NR == 0) exit 1
		printf "%.3f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
now_ns() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", (b - a) / 1e9}'; }

echo "# Argon2id cost of passphrase slots"
echo
echo "command: bash bench/kdf.sh   (REPS=$REPS)"
echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "cpu:     $(nproc) x $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
echo "go:      $($GO version)"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)"
echo

$GO build -o bin/mysecure ./cmd/mysecure
# Secrets only the owner may read: mysecure warns about anything looser.
(
	umask 077
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/pass"
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/salt"
)
: >"$work/empty"

echo "timed, for each KDF and rep (\$W is the temp dir, the store is new each rep):"
echo "    bin/mysecure init --store \$W/store --passphrase-file \$W/pass --salt-file \$W/salt KDF-FLAGS"
echo "    bin/mysecure file encrypt --store \$W/store --passphrase-file \$W/pass --salt-file \$W/salt \$W/empty \$W/out"
echo

echo "| KDF flags | init s (median) | init min..max | unlock s (median) | unlock min..max |"
echo "|---|---:|---:|---:|---:|"
for flags in "--kdf-memory 256 --kdf-time 3" "--kdf-memory 64"; do
	: >"$work/init.s"
	: >"$work/unlock.s"
	for _ in $(seq 1 "$REPS"); do
		rm -rf "$work/store" "$work/out"
		t0=$(now_ns)
		# shellcheck disable=SC2086 # flags are words on purpose
		bin/mysecure init --store "$work/store" --passphrase-file "$work/pass" --salt-file "$work/salt" $flags >/dev/null 2>&1
		t1=$(now_ns)
		bin/mysecure file encrypt --store "$work/store" --passphrase-file "$work/pass" --salt-file "$work/salt" "$work/empty" "$work/out"
		t2=$(now_ns)
		secs "$t0" "$t1" >>"$work/init.s"; echo >>"$work/init.s"
		secs "$t1" "$t2" >>"$work/unlock.s"; echo >>"$work/unlock.s"
	done
	printf '| `%s` | %s | %s..%s | %s | %s..%s |\n' "$flags" \
		"$(median <"$work/init.s")" "$(sort -g "$work/init.s" | head -1)" "$(sort -g "$work/init.s" | tail -1)" \
		"$(median <"$work/unlock.s")" "$(sort -g "$work/unlock.s" | head -1)" "$(sort -g "$work/unlock.s" | tail -1)"
done
echo
echo "defaults, from bin/mysecure init --help:"
bin/mysecure init --help | grep -E -- '--kdf-(memory|time|threads)' | sed -E 's/^ +/    /; s/  +/  /g'
