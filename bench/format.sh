#!/usr/bin/env bash
# format.sh: throughput of the content format against raw AES-256-GCM, in one run.
#
#   bash bench/format.sh            (from any directory; `make bench` calls it)
#
# Part 1 runs the Go benchmarks of bench/format_test.go on one core (-test.cpu 1)
# for ROUNDS rounds (the compiled test binary once per round, all benchmarks each
# time) and prints median MB/s and format/raw ratios (bench/cmd/benchratio): the
# format must reach 0.9x of raw GCM for sealing and for opening.
#
# Part 2 creates a SIZE_MIB random file in /dev/shm and, after one untimed
# warm-up pass of each, times REPS times in alternating order `mysecure file
# encrypt` (volume with a cheap KDF, input and output in /dev/shm) and
# bench/cmd/rawgcm (plain crypto/aes GCM in 4 KiB blocks, same input, output in
# /dev/shm), both as whole processes timed from here; the format must reach 0.7x
# of raw. It also times `file encrypt` of an empty file: the fixed
# cost (process start, KDF unlock) inside the 1 GiB time.
#
# Nothing here fails on a missed target: the script reports, people judge. It
# exits non-zero only when something could not be run. Its full output is also
# saved in bench/out/format-TIMESTAMP.txt (git-ignored).
#
# Environment: ROUNDS (5), BENCHTIME (1s), SIZE_MIB (1024), REPS (5),
# KDF_FLAGS ("--kdf-memory 64": Argon2id flags of the benchmark volume; the
# unlock is part of every timed `file encrypt`), GO (go).
set -euo pipefail
shopt -s inherit_errexit

ROUNDS=${ROUNDS:-5}
BENCHTIME=${BENCHTIME:-1s}
SIZE_MIB=${SIZE_MIB:-1024}
REPS=${REPS:-5}
KDF_FLAGS=${KDF_FLAGS:---kdf-memory 64}
GO=${GO:-go}

cd "$(dirname "$0")/.."

if [ ! -d /dev/shm ] || [ ! -w /dev/shm ]; then
	echo "format.sh: error: /dev/shm is missing or not writable; part 2 needs it" >&2
	exit 1
fi
need_kib=$(( (3 * SIZE_MIB + 256) * 1024 ))
avail_kib=$(df -Pk /dev/shm | awk 'NR==2 {print $4}')
if [ "$avail_kib" -lt "$need_kib" ]; then
	echo "format.sh: error: /dev/shm has $((avail_kib / 1024)) MiB free, part 2 needs $((need_kib / 1024)) MiB" >&2
	echo "format.sh: hint: set SIZE_MIB lower (the numbers then cover a smaller file)" >&2
	exit 1
fi

work=$(mktemp -d /dev/shm/mysecure-format-bench.XXXXXX)
cleanup() { rm -rf -- "$work"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p bench/out
log=bench/out/format-$(date -u +%Y%m%dT%H%M%SZ).txt
exec > >(tee "$log") 2>&1

# median reads numbers, one a line, and prints their median.
median() {
	sort -g | awk '{v[NR] = $1} END {
		if (NR == 0) exit 1
		printf "%.3f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
now_ns() { date +%s%N; }
# secs START_NS END_NS prints the seconds between them.
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", (b - a) / 1e9}'; }

echo "# mysecure content format benchmark"
echo
echo "command:   bash bench/format.sh   (ROUNDS=$ROUNDS BENCHTIME=$BENCHTIME SIZE_MIB=$SIZE_MIB REPS=$REPS KDF_FLAGS='$KDF_FLAGS')"
echo "date:      $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "commit:    $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- 2>/dev/null || echo ' (working tree has changes)')"
echo "cpu:       $(nproc) x $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
echo "aes flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -xE 'aes|pclmulqdq|avx2|vaes|vpclmulqdq|avx512f' | tr '\n' ' ')"
echo "go:        $($GO version)"
echo "load:      $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)"
echo

echo "## building"
$GO build -o bin/mysecure ./cmd/mysecure
$GO build -o "$work/rawgcm" ./bench/cmd/rawgcm
$GO build -o "$work/benchratio" ./bench/cmd/benchratio
$GO test -c -o "$work/bench.test" ./bench
echo "built bin/mysecure, rawgcm, benchratio, bench.test"
echo

echo "## part 1: Go benchmarks, one core, $ROUNDS rounds of -test.benchtime $BENCHTIME"
for r in $(seq 1 "$ROUNDS"); do
	echo "round $r/$ROUNDS ..."
	if ! (cd bench && "$work/bench.test" -test.run '^$' -test.bench . -test.benchtime "$BENCHTIME" \
		-test.cpu 1 -test.benchmem) >"$work/round-$r.txt" 2>&1; then
		cat "$work/round-$r.txt"
		echo "format.sh: error: the Go benchmarks failed in round $r" >&2
		exit 1
	fi
	grep '^Benchmark' "$work/round-$r.txt" | sed 's/^/    /'
done
echo
"$work/benchratio" "$work"/round-*.txt
echo

echo "## part 2: file encrypt of $SIZE_MIB MiB in /dev/shm against raw GCM, $REPS reps"
# Secrets only the owner may read: mysecure warns about anything looser.
(
	umask 077
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/pass"
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/salt"
)
read -ra kdf_flags <<<"$KDF_FLAGS"
if ! init_out=$(bin/mysecure init --store "$work/store" --passphrase-file "$work/pass" \
	--salt-file "$work/salt" "${kdf_flags[@]}" 2>&1); then
	echo "$init_out" >&2
	echo "format.sh: error: could not create the benchmark volume" >&2
	exit 1
fi
echo "volume: bin/mysecure init --store \$W/store --passphrase-file \$W/pass --salt-file \$W/salt $KDF_FLAGS"
t0=$(now_ns)
head -c $((SIZE_MIB << 20)) /dev/urandom >"$work/in"
echo "input: $SIZE_MIB MiB from /dev/urandom in $(secs "$t0" "$(now_ns)") s"
: >"$work/empty"
bytes=$((SIZE_MIB << 20))
enc=(bin/mysecure file encrypt --store "$work/store" --passphrase-file "$work/pass" --salt-file "$work/salt")
echo "timed: \$W/rawgcm \$W/in \$W/out.raw"
echo "timed: bin/mysecure file encrypt --store \$W/store --passphrase-file \$W/pass --salt-file \$W/salt \$W/in \$W/out.msec"
echo "timed: the same file encrypt of an empty file (fixed cost: start, KDF unlock)"
echo

: >"$work/raw.s"
: >"$work/enc.s"
: >"$work/fixed.s"
: >"$work/ratio"
: >"$work/ratio.data"
# One untimed run of each first: the first writes into fresh memory (tmpfs
# pages the kernel, or in a VM the host, has not handed out yet) cost far more
# than later ones and would penalize whichever ran first.
"$work/rawgcm" "$work/in" "$work/out.raw" 2>/dev/null
"${enc[@]}" "$work/in" "$work/out.msec"
rm -f "$work/out.raw" "$work/out.msec"

# time_raw and time_enc run one timed pass each and print its seconds.
time_raw() {
	local t0 t1
	t0=$(now_ns)
	"$work/rawgcm" "$work/in" "$work/out.raw" 2>>"$work/rawgcm.log"
	t1=$(now_ns)
	rm -f "$work/out.raw"
	secs "$t0" "$t1"
}
time_enc() {
	local t0 t1
	t0=$(now_ns)
	"${enc[@]}" "$1" "$work/out.msec"
	t1=$(now_ns)
	rm -f "$work/out.msec"
	secs "$t0" "$t1"
}

echo "| rep | raw GCM s | raw GCM MB/s | file encrypt s | file encrypt MB/s | ratio | empty-file encrypt s | ratio without fixed cost |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
for i in $(seq 1 "$REPS"); do
	# Alternate the order so that neither side always runs first.
	if [ $((i % 2)) -eq 1 ]; then
		raw_s=$(time_raw)
		enc_s=$(time_enc "$work/in")
	else
		enc_s=$(time_enc "$work/in")
		raw_s=$(time_raw)
	fi
	fixed_s=$(time_enc "$work/empty")
	echo "$raw_s" >>"$work/raw.s"
	echo "$enc_s" >>"$work/enc.s"
	echo "$fixed_s" >>"$work/fixed.s"
	awk -v r="$raw_s" -v e="$enc_s" 'BEGIN {printf "%.3f\n", r / e}' >>"$work/ratio"
	# Without the fixed cost: meaningless (n/a) when noise makes the empty
	# file take as long as the full one.
	data=$(awk -v r="$raw_s" -v e="$enc_s" -v f="$fixed_s" 'BEGIN {
		if (e > f) printf "%.3f", r / (e - f); else printf "n/a" }')
	if [ "$data" != n/a ]; then echo "$data" >>"$work/ratio.data"; fi
	awk -v i="$i" -v r="$raw_s" -v e="$enc_s" -v f="$fixed_s" -v d="$data" -v n="$bytes" 'BEGIN {
		printf "| %d | %.3f | %.0f | %.3f | %.0f | %.3f | %.3f | %s |\n", i, r, n / r / 1e6, e, n / e / 1e6, r / e, f, d }'
done
raw_m=$(median <"$work/raw.s")
enc_m=$(median <"$work/enc.s")
fixed_m=$(median <"$work/fixed.s")
ratio_m=$(median <"$work/ratio")
ratio_dm=$(median <"$work/ratio.data" || echo n/a)
awk -v r="$raw_m" -v e="$enc_m" -v f="$fixed_m" -v q="$ratio_m" -v d="$ratio_dm" -v n="$bytes" 'BEGIN {
	printf "| median | %.3f | %.0f | %.3f | %.0f | %.3f | %.3f | %s |\n", r, n / r / 1e6, e, n / e / 1e6, q, f, d }'
echo
echo "rawgcm's own timings (sealing alone excludes process start and I/O):"
sed 's/^/    /' "$work/rawgcm.log"
echo
verdict=$(awk -v q="$ratio_m" 'BEGIN {print (q >= 0.7) ? "met" : "NOT met"}')
echo "file encrypt / raw GCM (median of per-rep ratios): ${ratio_m}x, target >= 0.70x: $verdict"
echo "without the fixed cost (empty-file encrypt time subtracted): ${ratio_dm}x (information)"
echo
echo "log saved in $log"
