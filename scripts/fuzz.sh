#!/usr/bin/env bash
# fuzz.sh: run every Go fuzz target of the module for a while each.
#
#   scripts/fuzz.sh [FUZZTIME]      default 3s (make stress); make stress-long uses 10m
#
# Targets are found with grep ("func FuzzX(" in *_test.go), so a new fuzz
# test is picked up without editing this file. Each runs alone on
# -parallel 2 (CI machines have 2 cores). Prints one line per target
# (package, target, executions, new interesting inputs) and a total; exits
# non-zero if any target fails. A failing input is written by Go under the
# package's testdata/fuzz/FuzzX/ directory: commit it as a regression seed
# once fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-3s}
go=${GO:-go}

fail=0
total=0
n=0
bindir=$(mktemp -d)
trap 'rm -rf "$bindir"' EXIT
cache=$($go env GOCACHE)/fuzz
mod=$($go list -m)
printf '%-24s %-24s %12s %8s %s\n' package target execs new result
while IFS=: read -r file fn; do
	dir=$(dirname "$file")
	pkg=./$dir
	# One instrumented test binary per package (building is most of the
	# cost of a short run), run from the package directory so that the
	# committed seeds under testdata/fuzz are used.
	bin=$bindir/$(tr / _ <<<"$dir").test
	if [ ! -x "$bin" ]; then
		$go test -c -fuzz=. -o "$bin" "$pkg"
	fi
	log=$(mktemp)
	if (cd "$dir" && "$bin" -test.run='^$' -test.fuzz="^${fn}\$" -test.fuzztime="$fuzztime" -test.parallel=2 \
		-test.fuzzcachedir="$cache/$mod/$dir") >"$log" 2>&1; then
		res=ok
	else
		res=FAIL
		fail=1
	fi
	# The last progress line: "fuzz: elapsed: 3s, execs: 12345 (4115/sec), new interesting: 2 (total: 40)"
	line=$(grep -E '^fuzz: elapsed: .*execs: ' "$log" | tail -1 || true)
	execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$line")
	new=$(sed -nE 's/.*new interesting: ([0-9]+).*/\1/p' <<<"$line")
	printf '%-24s %-24s %12s %8s %s\n' "$pkg" "$fn" "${execs:-0}" "${new:-0}" "$res"
	if [ "$res" = FAIL ]; then
		sed 's/^/    /' "$log" | tail -40
	fi
	if [ -z "${execs:-}" ] || [ "${execs:-0}" -eq 0 ]; then
		echo "fuzz.sh: $pkg $fn ran no executions" >&2
		fail=1
	fi
	total=$((total + ${execs:-0}))
	n=$((n + 1))
	rm -f "$log"
done < <(grep -rhoE --include='*_test.go' -H '^func (Fuzz[A-Za-z0-9_]+)\(' . | sed -E 's/^\.\/([^:]+):func (Fuzz[A-Za-z0-9_]+)\(/\1:\2/' | sort)
echo "fuzz.sh: $n targets, $total executions, $fuzztime each"
exit $fail
