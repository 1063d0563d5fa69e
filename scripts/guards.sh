#!/usr/bin/env bash
# guards.sh: grep guards for rules the compiler does not check.
#   - library code (everything but cmd/ and tests) never panics on purpose,
#     never calls os.Exit, never prints to stdout, never imports cobra/viper;
#   - internal/testenv and encfs/daemon/daemontest are for tests only;
#   - "/proc/..." string literals live in internal/procfs, the one reader
#     of /proc and mountinfo (cmd/ included; exempt: _test.go files,
#     stand-ins under testdata/, and bench/, whose tools profile other
#     processes).
# Programs under testdata/ (stand-ins the tests build, such as the NDB
# stand-ins of ndb/testdata/standin) are test code: they print and exit.
set -euo pipefail
cd "$(dirname "$0")/.."

fail=0
lib=$(git ls-files '*.go' | grep -v '^cmd/' | grep -v '_test\.go$' | grep -v '^bench/' | grep -v '/testdata/' || true)
check() { # pattern message
	local hits
	hits=$(echo "$lib" | xargs -r grep -nE "$1" || true)
	if [ -n "$hits" ]; then
		echo "guard: $2:" >&2
		echo "$hits" >&2
		fail=1
	fi
}
check '(^|[^.A-Za-z_])panic\(' 'naked panic( in library code'
check 'os\.Exit\(' 'os.Exit outside cmd/'
check 'fmt\.Print|os\.Stdout' 'library code printing to stdout'
check '"github.com/spf13/(cobra|viper)"' 'cobra/viper imported below cmd/'
check '"github.com/mysecure/mysecure/internal/testenv"' 'internal/testenv imported by non-test code'
check '"github.com/mysecure/mysecure/encfs/daemon/daemontest"' 'encfs/daemon/daemontest imported by non-test code'
procfs=$(git ls-files '*.go' | grep -v '_test\.go$' | grep -v '^bench/' | grep -v '/testdata/' | grep -v '^internal/procfs/' || true)
hits=$(echo "$procfs" | xargs -r grep -nE '"/proc/' || true)
if [ -n "$hits" ]; then
	echo 'guard: "/proc/" string literal outside internal/procfs:' >&2
	echo "$hits" >&2
	fail=1
fi
exit $fail
