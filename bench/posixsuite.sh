#!/usr/bin/env bash
# posixsuite.sh: go-fuse's POSIX conformance tests (posixtest, at the
# go-fuse version in go.mod; run by bench/posixsuite) on a plain directory,
# on gocryptfs and on a mysecure mount, in one run; a table of every test's
# result on each and the failure counts. docs/limitations.md keeps the
# counts and the reason for every difference.
#
#   bash bench/posixsuite.sh       (needs root, /dev/fuse, gocryptfs; about
#                                   40 s; make posix-suite runs it with
#                                   COUNT=3, about 75 s)
#
# Environment: WORKBASE /var/tmp (plain directory and both stores live
# there, on the real disk), GO go, COUNT 1 (runs of the whole suite per
# target: a flaky test shows as failing in some runs only).
#
# The work dir is built like bench/compare.sh's: bin/mysecure init with a
# passphrase file and a cheap KDF, mount (the detached daemon, enforcing),
# one rule `ALLOW @mysql * <the suite binary>`, the suite runs in
# mnt/mysql/posixsuite; gocryptfs -init -scryptn 10 with -extpass, mounted
# with its defaults in the foreground. On every exit both are unmounted and
# the work dir removed. Exit status: 0 when the suite could run everywhere
# (test failures are the result, not an error), 1 otherwise.
set -euo pipefail
shopt -s inherit_errexit

main() {
	WORKBASE=${WORKBASE:-/var/tmp}
	GO=${GO:-go}
	COUNT=${COUNT:-1}
	cd "$(dirname "$0")/.."

	die() {
		echo "posixsuite.sh: error: $*" >&2
		exit 1
	}
	[ "$(id -u)" -eq 0 ] || die "must run as root (FUSE mounts, mknod)"
	[ -c /dev/fuse ] || die "/dev/fuse is missing"
	for p in fusermount3 gocryptfs; do
		command -v "$p" >/dev/null || die "$p is missing (scripts/setup-deps.sh installs it)"
	done

	work=$(mktemp -d "$WORKBASE/mysecure-posixsuite.XXXXXX")
	gpid=
	cleanup() {
		local rc=$?
		trap - EXIT INT TERM
		if [ -d "$work/ms/mnt" ] && mountpoint -q "$work/ms/mnt"; then
			ms umount >/dev/null 2>&1 || umount -l "$work/ms/mnt" || true
		fi
		if mountpoint -q "$work/gc/mnt" 2>/dev/null; then
			fusermount3 -u "$work/gc/mnt" 2>/dev/null || umount -l "$work/gc/mnt" || true
		fi
		if [ -n "$gpid" ]; then
			wait "$gpid" 2>/dev/null || true
		fi
		if awk -v w="$work" 'index($5, w) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
			echo "posixsuite.sh: warning: something is still mounted below $work; not removing it" >&2
		else
			rm -rf --one-file-system -- "$work"
		fi
		exit "$rc"
	}
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	mkdir -p "$work/bin" "$work/plain" "$work/gc/cipher" "$work/gc/mnt" "$work/ms/store" "$work/ms/mnt"
	$GO build -o "$work/bin/mysecure" ./cmd/mysecure
	$GO test -c -o "$work/bin/posixsuite.test" ./bench/posixsuite

	ms() {
		MYSECURE_STORE="$work/ms/store" MYSECURE_MOUNT="$work/ms/mnt" \
			MYSECURE_SOCKET="$work/ms/control.sock" MYSECURE_AUDIT_LOG="$work/ms/access.log" \
			MYSECURE_LOG_FILE="$work/ms/daemon.log" MYSECURE_STATE_DIR="$work/ms/state" \
			"$work/bin/mysecure" "$@"
	}
	creds=(--passphrase-file "$work/ms/pass" --salt-file "$work/ms/salt")
	echo "posixsuite-passphrase" >"$work/ms/pass"
	echo "posixsuite-salt" >"$work/ms/salt"
	chmod 600 "$work/ms/pass" "$work/ms/salt"
	ms init --kdf-memory 8 --kdf-time 1 "${creds[@]}" >/dev/null
	ms mount "${creds[@]}" >/dev/null
	ms acl add "ALLOW @mysql * $work/bin/posixsuite.test" "${creds[@]}" >/dev/null
	mkdir -p "$work/ms/mnt/mysql/posixsuite"

	gocryptfs -init -q -nosyslog -extpass "echo posixsuite-passphrase" -scryptn 10 "$work/gc/cipher"
	gocryptfs -fg -q -nosyslog -extpass "echo posixsuite-passphrase" "$work/gc/cipher" "$work/gc/mnt" &
	gpid=$!
	for _ in $(seq 300); do
		mountpoint -q "$work/gc/mnt" && break
		kill -0 "$gpid" 2>/dev/null || die "gocryptfs exited before mounting"
		sleep 0.1
	done
	mountpoint -q "$work/gc/mnt" || die "gocryptfs did not mount within 30 s"

	stamp=$(date -u +%Y%m%dT%H%M%SZ)
	mkdir -p bench/out
	log=bench/out/posixsuite-$stamp.txt
	{
		echo "# go-fuse posixtest: plain, gocryptfs, mysecure"
		echo
		echo "command: bash bench/posixsuite.sh   (COUNT=$COUNT)"
		echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
		echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- 2>/dev/null || echo ' (working tree has changes)')"
		echo "suite:   $($GO list -m -f '{{.Path}} {{.Version}}' github.com/hanwen/go-fuse/v2)/posixtest"
		echo "disk:    $(findmnt -no SOURCE,FSTYPE -T "$work" | tr -s ' ')"
		echo "kernel:  $(uname -r)"
		echo "gocryptfs: $(gocryptfs -version | head -1)"
		echo "mysecure:  $(ms version | head -1), enforcing, ALLOW @mysql * for the suite binary"
		echo
	} | tee "$log"

	declare -A dirs=([plain]="$work/plain" [gocryptfs]="$work/gc/mnt" [mysecure]="$work/ms/mnt/mysql/posixsuite")
	targets=(plain gocryptfs mysecure)
	for t in "${targets[@]}"; do
		for i in $(seq "$COUNT"); do
			d=${dirs[$t]}/run$i
			mkdir "$d"
			# Test failures make the binary exit 1: they are the result.
			(cd "$work" && POSIXSUITE_DIR=$d timeout 600 "$work/bin/posixsuite.test" \
				-test.v -test.count=1 -test.run '^TestSuite$' >"$work/out-$t-$i.txt" 2>&1) || true
			grep -qE '^(--- |ok|PASS|FAIL)' "$work/out-$t-$i.txt" ||
				die "the suite did not run on $t: $(tail -5 "$work/out-$t-$i.txt")"
		done
	done

	# One row per test: PASS, FAIL or SKIP on each target (with COUNT > 1,
	# e.g. FAIL 1/3 when one run of three failed).
	{
		printf '| test | %s |\n|---|%s\n' "$(IFS='|'; echo "${targets[*]}" | sed 's/|/ | /g')" "$(printf -- '---|%.0s' "${targets[@]}")"
		names=$(cat "$work"/out-*.txt | sed -nE 's/^ +--- (PASS|FAIL|SKIP): TestSuite\/([^ ]+).*/\2/p' | sort -u)
		declare -A fails=()
		for n in $names; do
			row="| $n |"
			for t in "${targets[@]}"; do
				nf=0 ns=0
				for i in $(seq "$COUNT"); do
					r=$(sed -nE "s/^ +--- (PASS|FAIL|SKIP): TestSuite\/$n .*/\1/p" "$work/out-$t-$i.txt")
					case $r in FAIL | "") nf=$((nf + 1)) ;; SKIP) ns=$((ns + 1)) ;; esac
				done
				if [ "$nf" -gt 0 ]; then
					fails[$t]=$((${fails[$t]:-0} + 1))
					[ "$COUNT" -gt 1 ] && row+=" FAIL $nf/$COUNT |" || row+=" FAIL |"
				elif [ "$ns" -gt 0 ]; then
					row+=" skip |"
				else
					row+=" pass |"
				fi
			done
			echo "$row"
		done
		echo
		echo "tests: $(echo "$names" | wc -w)"
		for t in "${targets[@]}"; do
			echo "failures on $t: ${fails[$t]:-0}"
		done
		echo
		echo "## failure and skip messages"
		for t in "${targets[@]}"; do
			for i in $(seq "$COUNT"); do
				echo
				echo "### $t (run $i)"
				# The lines each failed or skipped test printed, the work dir made relative.
				awk '/^=== (RUN|CONT|NAME|PAUSE)/ { cur = $3; if (!(cur in seen)) { seen[cur] = 1; order[++k] = cur }; next } /^ +--- (PASS|FAIL|SKIP): / { res[$3] = $2; next } cur != "" { msg[cur] = msg[cur] $0 "\n" }
					END { for (j = 1; j <= k; j++) { n = order[j]; if (res[n] != "PASS:" && n != "TestSuite") printf "%s %s\n%s", res[n], n, msg[n] } }' \
					"$work/out-$t-$i.txt" | sed "s|$work|WORK|g" | head -200
			done
		done
	} | tee -a "$log"
	echo
	echo "full output: $log"
}

main "$@"
exit
