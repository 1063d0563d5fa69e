#!/usr/bin/env bash
# backup.sh: encrypted backups side by side with the plain pipelines they
# replace, in one run; medians and ratios as Markdown.
#
#   bash bench/backup.sh        (from the repo root; needs root; about 18 minutes
#                                on 2 CPUs at 1 GiB; docs/performance-backup.md)
#   MYSECURE_BENCH_GIB=0.2 REPS=1 RESTORE_REPS=1 bash bench/backup.sh   (a quick try)
#
# Starts a private mariadbd (datadir in a fresh work dir under /var/tmp, the
# real disk), loads sysbench-like InnoDB tables, and measures, alternating
# the order every round:
#
#   logical-SIZE   mysecure backup --databases bench      vs  mariadb-dump ARGS | zstd -3 -T2 > file
#                  (at the small size, then at the full size: RSS against size)
#   physical       mysecure backup --type physical         vs  mariabackup --backup --stream=xbstream | zstd -3 -T2 > file
#   restore        mysecure restore ID [--no-verify]       vs  zstd -dc file | mariadb   (database dropped before each run)
#
# ARGS are the ones mysecure gives mariadb-dump: --single-transaction
# --routines --events --triggers --hex-blob --databases bench (the server
# has no binary log, so no --master-data). Wall time and peak RSS come from
# bench/cmd/backupbench: RSS is VmHWM of the mysecure process alone, polled.
# The full output goes to bench/out/backup-TIMESTAMP.txt and, with PROFILE=1,
# perf call graphs of one extra mysecure run of each kind to
# bench/out/backup-TIMESTAMP/ (both git-ignored).
#
# Nothing fails on a missed target: the table says "met" or "NOT met". The
# script exits non-zero only when something could not be run. On every
# exit, Ctrl-C included, the server is stopped and the work dir removed.
#
# Environment (defaults):
#   MYSECURE_BENCH_GIB 1 (the full size, on-disk InnoDB .ibd bytes; fractions allowed)
#   MYSECURE_BENCH_SMALL_MIB 250 (the small size, for RSS against size)
#   REPS 5 (rounds of each backup case), RESTORE_REPS 3, PROFILE 1 (when perf exists),
#   EXTRA_LEVELS 1 (also mysecure backup --level N at the full size and physical, for
#   information: "mysecure-level-N" rows; empty for none),
#   WORKBASE /var/tmp, GO go, MYSECURE_BIN (measure this binary instead of building ./cmd/mysecure)
set -euo pipefail
shopt -s inherit_errexit

# Everything is in main, which bash reads whole before running it, and the
# exit is on the same line as the call: editing this file during a run does
# not change the run.
main() {
	GIB=${MYSECURE_BENCH_GIB:-1}
	SMALL_MIB=${MYSECURE_BENCH_SMALL_MIB:-250}
	REPS=${REPS:-5}
	RESTORE_REPS=${RESTORE_REPS:-3}
	EXTRA_LEVELS=${EXTRA_LEVELS-1}
	WORKBASE=${WORKBASE:-/var/tmp}
	GO=${GO:-go}
	MSBIN=${MYSECURE_BIN:-}
	FULL_MIB=$(awk -v g="$GIB" 'BEGIN { printf "%d", g * 1024 }')
	[ "$FULL_MIB" -gt 0 ] || { echo "backup.sh: error: MYSECURE_BENCH_GIB=$GIB" >&2; exit 1; }
	if [ "$SMALL_MIB" -ge "$FULL_MIB" ]; then
		SMALL_MIB=$((FULL_MIB / 4))
	fi

	cd "$(dirname "$0")/.."

	die() {
		echo "backup.sh: error: $*" >&2
		exit 1
	}
	[ "$(id -u)" -eq 0 ] || die "must run as root (mariadbd as mysql, the volume's key file)"
	id mysql >/dev/null 2>&1 || need_deps=1
	for p in mariadbd mariadb-install-db mariadb mariadb-admin mariadb-dump mariabackup mbstream; do
		command -v "$p" >/dev/null || need_deps=1
	done
	if [ "${need_deps:-0}" = 1 ]; then
		./scripts/setup-deps.sh
	fi
	if ! command -v zstd >/dev/null; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q zstd >&2
	fi
	PROFILE=${PROFILE:-1}
	if [ "$PROFILE" = 1 ] && ! command -v perf >/dev/null; then
		echo "backup.sh: perf is missing: no profiles (apt-get install linux-perf)" >&2
		PROFILE=0
	fi
	# Our own settings only: nothing from the caller's MYSECURE_* may change
	# what is measured.
	for v in $(compgen -e | grep '^MYSECURE_' || true); do
		unset "$v"
	done

	work=$(mktemp -d "$WORKBASE/mysecure-backupbench.XXXXXX")
	chmod 755 "$work" # mysqld (user mysql) traverses it to its datadir and socket
	sock=$work/run/mysqld.sock
	srvpid=
	cleanup() {
		local rc=$?
		trap - EXIT INT TERM
		if [ -n "$srvpid" ] && kill -0 "$srvpid" 2>/dev/null; then
			mariadb-admin --no-defaults -S "$sock" -uroot shutdown 2>/dev/null || kill -TERM "$srvpid" 2>/dev/null || true
			for _ in $(seq 600); do
				kill -0 "$srvpid" 2>/dev/null || break
				sleep 0.1
			done
			kill -KILL "$srvpid" 2>/dev/null || true
			wait "$srvpid" 2>/dev/null || true
		fi
		rm -rf --one-file-system -- "$work"
		exit "$rc"
	}
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	stamp=$(date -u +%Y%m%dT%H%M%SZ)
	mkdir -p bench/out
	log=bench/out/backup-$stamp.txt
	prof=
	if [ "$PROFILE" = 1 ]; then
		prof=$PWD/bench/out/backup-$stamp
		mkdir -p "$prof"
	fi

	mkdir -p "$work/bin" "$work/run" "$work/data" "$work/tmp" "$work/store" "$work/ref"
	chown mysql:mysql "$work/run" "$work/data" "$work/tmp"
	if [ -n "$MSBIN" ]; then
		cp "$MSBIN" "$work/bin/mysecure"
	else
		$GO build -o "$work/bin/mysecure" ./cmd/mysecure
	fi
	$GO build -o "$work/bin/backupbench" ./bench/cmd/backupbench
	ms=$work/bin/mysecure
	bb=$work/bin/backupbench
	res=$work/results.jsonl

	{
		echo "# mysecure backup benchmark: encrypted backups against plain pipelines"
		echo
		echo "command: bash bench/backup.sh   (MYSECURE_BENCH_GIB=$GIB MYSECURE_BENCH_SMALL_MIB=$SMALL_MIB REPS=$REPS RESTORE_REPS=$RESTORE_REPS EXTRA_LEVELS=$EXTRA_LEVELS PROFILE=$PROFILE)"
		echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
		echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- 2>/dev/null || echo ' (working tree has changes)')${MSBIN:+; mysecure binary: $MSBIN}"
		echo "cpu:     $(nproc) x $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
		echo "memory:  $(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
		echo "disk:    $(findmnt -no SOURCE,FSTYPE -T "$work" | tr -s ' ')"
		echo "kernel:  $(uname -r)"
		echo "go:      $($GO version)"
		echo "server:  $(mariadbd --version)"
		echo "tools:   $(mariadb-dump --version); $(mariabackup --version 2>&1 | tail -1); $(zstd --version)"
		echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) at start"
		echo
	} | tee "$log"
	start=$(date +%s)

	# --- the server -----------------------------------------------------
	mariadb-install-db --no-defaults --user=mysql --datadir="$work/data" \
		--auth-root-authentication-method=socket >"$work/install.log" 2>&1 ||
		{ cat "$work/install.log" >&2; die "mariadb-install-db failed"; }
	mariadbd --no-defaults --datadir="$work/data" --socket="$sock" --pid-file="$work/run/mysqld.pid" \
		--skip-networking --user=mysql --innodb-buffer-pool-size=512M --tmpdir="$work/tmp" \
		--log-error="$work/mysqld.err" >/dev/null 2>&1 &
	srvpid=$!
	for _ in $(seq 300); do
		mariadb --no-defaults -S "$sock" -uroot -e 'SELECT 1' >/dev/null 2>&1 && break
		kill -0 "$srvpid" 2>/dev/null || { cat "$work/mysqld.err" >&2; die "mariadbd exited"; }
		sleep 0.2
	done
	sql() { mariadb --no-defaults -S "$sock" -uroot -N -B "$@"; }
	sql -e 'SELECT 1' >/dev/null || die "mariadbd did not start (see $work/mysqld.err)"
	dirty_pct=$(sql -e 'SELECT @@innodb_max_dirty_pages_pct')

	pw=$(head -c 18 /dev/urandom | base64 | tr '+/' 'xy')
	sql -e "CREATE USER bench@localhost IDENTIFIED BY '$pw'; GRANT ALL ON *.* TO bench@localhost"
	# The references read the same credentials from an option file.
	(umask 077 && printf '[client]\nuser=bench\npassword=%s\nsocket=%s\n' "$pw" "$sock" >"$work/client.cnf")
	(umask 077 && printf %s "$pw" >"$work/pw")

	export MYSECURE_STORE=$work/store MYSECURE_SOCKET=$work/none.sock MYSECURE_JOB_SOCKET=$work/none-jobs.sock
	# Temporary files of the tools (mariabackup, mysecure's credential FIFO)
	# in the work dir too: /tmp is shared and cleaned by others.
	export TMPDIR=$work/tmp
	msq() { "$ms" "$@" --keyfile "$work/kf" 2>>"$work/mysecure.err"; }
	# A master credential (init wants one) that the run never needs again.
	(umask 077 && head -c 24 /dev/urandom | base64 >"$work/pass" && head -c 24 /dev/urandom | base64 >"$work/salt")
	"$ms" init --kdf-memory 8 --kdf-time 1 --passphrase-file "$work/pass" --salt-file "$work/salt" --create-keyfile "$work/kf" >/dev/null 2>>"$work/mysecure.err"
	msq backup credentials set --user bench --mysql-socket "$sock" --password-file "$work/pw" >/dev/null

	# --- the data: sysbench-like tables (random-digit c and pad, as sysbench
	# writes them) plus a SHA-256 column, a short text from a small
	# vocabulary, a decimal and a datetime; about 2.2x with zstd -3.
	ntab=4
	chunk=100000
	sql -e "CREATE DATABASE bench"
	for i in $(seq "$ntab"); do
		sql bench -e "CREATE TABLE t$i (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, k INT UNSIGNED NOT NULL,
			c CHAR(120) NOT NULL, pad CHAR(60) NOT NULL, h CHAR(64) NOT NULL, note VARCHAR(200) NOT NULL,
			amount DECIMAL(12,2) NOT NULL, created DATETIME NOT NULL, KEY k_1 (k)) ENGINE=InnoDB"
	done
	chunk=50000 # rows per INSERT, about 24 MiB of .ibd
	rows=()     # per table
	for i in $(seq "$ntab"); do rows[i]=0; done
	d="LPAD(FLOOR(RAND()*99999999999),11,'0')"
	ibd_mib() { find "$work/data/bench" -name '*.ibd' -printf '%s\n' | awk '{ s += $1 } END { printf "%d", s / 1048576 }'; }
	grow_to() { # MiB: insert into the tables in turn until the .ibd files hold MiB
		local t0=$SECONDS i=1 r
		while [ "$(ibd_mib)" -lt "$1" ]; do
			r=${rows[i]}
			sql bench -e "INSERT INTO t$i SELECT seq, FLOOR(1+RAND()*1000000),
				CONCAT_WS('-',$d,$d,$d,$d,$d,$d,$d,$d,$d,$d), CONCAT_WS('-',$d,$d,$d,$d,$d), SHA2(seq,256),
				CONCAT(ELT(1+FLOOR(RAND()*6),'shipped','pending','cancelled','returned','delivered','on hold'),
					' order ',seq MOD 100000,' for customer ',FLOOR(RAND()*50000),' via ',
					ELT(1+FLOOR(RAND()*4),'post','courier','pickup','freight'),'; ',REPEAT('standard handling ',FLOOR(RAND()*3))),
				ROUND(RAND()*10000,2), '2024-01-01' + INTERVAL FLOOR(RAND()*63072000) SECOND
				FROM seq_$((r + 1))_to_$((r + chunk))"
			rows[i]=$((r + chunk))
			i=$((i % ntab + 1))
		done
		size_mib=$(ibd_mib)
		echo "data:    $(counts) rows in $ntab tables, $size_mib MiB of .ibd files (loaded in $((SECONDS - t0)) s)" | tee -a "$log"
	}
	size_label() { awk -v m="$1" 'BEGIN { if (m >= 1000) printf "%.2fGiB", m / 1024; else printf "%dMiB", m }'; }
	counts() { sql bench -e "SELECT (SELECT COUNT(*) FROM t1)+(SELECT COUNT(*) FROM t2)+(SELECT COUNT(*) FROM t3)+(SELECT COUNT(*) FROM t4)"; }

	# --- the runs ---------------------------------------------------------
	dumpargs="--single-transaction --routines --events --triggers --hex-blob --databases bench"
	ref_logical="mariadb-dump --defaults-extra-file=$work/client.cnf $dumpargs | zstd -q -3 -T2 > $work/ref/logical.sql.zst"
	ref_physical="mariabackup --defaults-extra-file=$work/client.cnf --backup --stream=xbstream 2>>$work/mariabackup.log | zstd -q -3 -T2 > $work/ref/physical.xb.zst"
	ref_restore="zstd -dc $work/ref/logical.sql.zst | mariadb --defaults-extra-file=$work/client.cnf"
	last_id=
	keep_id=
	# one CASE TOOL ROUND: one measured run, with the untimed cleanup before it.
	one() {
		local c=$1 t=$2 r=$3
		local m=("$bb" run -out "$res" -log "$log" -case "$c" -tool "$t" -round "$r")
		local mm=("${m[@]}" -stdout "$work/ms.out" -stderr "$work/mysecure.err" --)
		case "$c/$t" in
		logical*/reference)
			rm -f "$work/ref/logical.sql.zst"
			quiesce
			"${m[@]}" -- bash -o pipefail -c "$ref_logical" ;;
		logical*/mysecure)
			drop_backups
			quiesce
			"${mm[@]}" "$ms" backup --databases bench --keyfile "$work/kf"
			last_id=$(sed -n 's/^backup \([^ ]*\) complete.*/\1/p' "$work/ms.out") ;;
		logical*/mysecure-level-*)
			quiesce
			"${mm[@]}" "$ms" backup --databases bench --level "${t#mysecure-level-}" --keyfile "$work/kf"
			drop_own "$c $t" ;;
		physical/reference)
			rm -f "$work/ref/physical.xb.zst"
			quiesce
			"${m[@]}" -- bash -o pipefail -c "$ref_physical" ;;
		physical/mysecure)
			drop_backups physical
			quiesce
			"${mm[@]}" "$ms" backup --type physical --keyfile "$work/kf" ;;
		physical/mysecure-level-*)
			quiesce
			"${mm[@]}" "$ms" backup --type physical --level "${t#mysecure-level-}" --keyfile "$work/kf"
			drop_own "$c $t" ;;
		restore/*)
			sql -e "DROP DATABASE IF EXISTS bench"
			quiesce
			case "$t" in
			reference) "${m[@]}" -- bash -o pipefail -c "$ref_restore" ;;
			mysecure) "${mm[@]}" "$ms" restore "$keep_id" --keyfile "$work/kf" ;;
			mysecure-no-verify) "${mm[@]}" "$ms" restore "$keep_id" --no-verify --keyfile "$work/kf" ;;
			esac
			local n
			n=$(counts)
			[ "$n" = "$total_rows" ] || die "restore $t round $r: $n rows, want $total_rows" ;;
		esac
	}
	# quiesce: let InnoDB flush what earlier runs (a load, a restore, a DROP)
	# left dirty and purge their undo, then sync, so that every run starts
	# from the same state instead of paying for the one before it.
	quiesce() {
		local dirty hist
		sql -e "SET GLOBAL innodb_max_dirty_pages_pct=0"
		for _ in $(seq 600); do
			dirty=$(sql -e "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME='INNODB_BUFFER_POOL_PAGES_DIRTY'")
			hist=$(sql -e "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME='INNODB_HISTORY_LIST_LENGTH'")
			[ "${dirty:-0}" -le 16 ] && [ "${hist:-0}" -le 100 ] && break
			sleep 0.2
		done
		sql -e "SET GLOBAL innodb_max_dirty_pages_pct=$dirty_pct"
		sync
	}
	# drop_own LABEL: note the size of the backup just made and delete it.
	drop_own() {
		local id
		id=$(sed -n 's/^backup \([^ ]*\) complete.*/\1/p' "$work/ms.out")
		extra_sizes+=("$1: stored $(catalog | awk -v id="$id" '$1 == id { print $4 }' | numfmt --to=iec-i --suffix=B)")
		msq backup delete "$id" >/dev/null
	}
	catalog() { msq backup list --json | "$bb" catalog; }
	# drop_backups [TYPE]: delete the catalog's backups (of TYPE), but the one kept for restore.
	drop_backups() {
		local id typ rest
		catalog | while read -r id typ rest; do
			if [ "$id" != "$keep_id" ] && { [ -z "${1:-}" ] || [ "$typ" = "$1" ]; }; then
				msq backup delete "$id" >/dev/null
			fi
		done
	}
	# rounds CASE N TOOL...: N rounds; round r starts with the r-th tool, in turn.
	rounds() {
		local c=$1 n=$2
		shift 2
		local tools=("$@") k=$#
		for r in $(seq "$n"); do
			for j in $(seq 0 $((k - 1))); do
				one "$c" "${tools[$(((r - 1 + j) % k))]}" "$r"
			done
		done
	}

	echo "runs (case, tool, round: wall, VmHWM of the process, wait4 ru_maxrss):" | tee -a "$log"
	grow_to "$SMALL_MIB"
	small_label="logical-$(size_label "$size_mib")"
	extra=()
	extra_sizes=()
	for l in ${EXTRA_LEVELS//,/ }; do
		extra+=("mysecure-level-$l")
	done
	rounds "$small_label" "$REPS" reference mysecure
	small_plain=$(catalog | awk -v id="$last_id" '$1 == id { print $3 }')

	grow_to "$FULL_MIB"
	total_rows=$(counts)
	full_label="logical-$(size_label "$size_mib")"
	rounds "$full_label" "$REPS" reference mysecure "${extra[@]}"
	keep_id=$last_id
	full_plain=$(catalog | awk -v id="$keep_id" '$1 == id { print $3 }')
	full_stored=$(catalog | awk -v id="$keep_id" '$1 == id { print $4 }')
	ref_size=$(stat -c %s "$work/ref/logical.sql.zst")

	rounds physical "$REPS" reference mysecure "${extra[@]}"
	phys_ref_size=$(stat -c %s "$work/ref/physical.xb.zst")
	phys_plain=$(catalog | awk '$2 == "physical" { p = $3 } END { print p + 0 }')
	phys_stored=$(catalog | awk '$2 == "physical" { p = $4 } END { print p + 0 }')
	drop_backups physical

	rounds restore "$RESTORE_REPS" reference mysecure mysecure-no-verify

	if [ -n "$prof" ]; then
		echo "profiles: one extra run of each under perf record -g (not in the table)" >&2
		perfrun() { # NAME ARGS...
			local name=$1
			shift
			if ! perf record -q -g -F 499 --no-buildid-cache -o "$prof/$name.data" -- "$@" >/dev/null 2>>"$work/perf.err"; then
				echo "backup.sh: perf record $name failed: $(tail -1 "$work/perf.err")" >&2
				return 0
			fi
			perf report -i "$prof/$name.data" --stdio --no-children --sort comm,dso,sym --percent-limit 1 \
				2>/dev/null | grep -v '^$' | head -150 >"$prof/$name.txt" || true
			perf report -i "$prof/$name.data" --stdio --no-children --sort comm,dso -g none \
				2>/dev/null | grep -v '^#' | grep -v '^$' | head -20 >"$prof/$name.dso.txt" || true
		}
		perfrun logical "$ms" backup --databases bench --keyfile "$work/kf"
		perfrun physical "$ms" backup --type physical --keyfile "$work/kf"
		sql -e "DROP DATABASE IF EXISTS bench"
		perfrun restore-no-verify "$ms" restore "$keep_id" --no-verify --keyfile "$work/kf"
		# GC and scheduler view of one logical backup.
		GODEBUG=gctrace=1 "$ms" backup --databases bench --keyfile "$work/kf" >/dev/null 2>"$prof/logical.gctrace" || true
		for f in "$prof"/*.dso.txt; do
			echo "== $(basename "$f" .dso.txt): samples by command and object"
			cat "$f"
		done >"$prof/summary.txt"
	fi

	{
		echo
		echo "## Results"
		echo
		"$bb" report "$res"
		echo
		echo "sizes:   $small_label: dump $(numfmt --to=iec-i --suffix=B "$small_plain");" \
			"$full_label: dump $(numfmt --to=iec-i --suffix=B "$full_plain"), mysecure stored $(numfmt --to=iec-i --suffix=B "$full_stored")," \
			"zstd -3 file $(numfmt --to=iec-i --suffix=B "$ref_size");" \
			"physical: stream $(numfmt --to=iec-i --suffix=B "$phys_plain"), mysecure stored $(numfmt --to=iec-i --suffix=B "$phys_stored")," \
			"zstd -3 file $(numfmt --to=iec-i --suffix=B "$phys_ref_size")"
		for e in "${extra_sizes[@]}"; do
			echo "         $e"
		done | sort -u
		echo
		echo "## Command lines (WORK = the work dir; CNF = WORK/client.cnf: user, password, socket)"
		echo
		w() { sed "s#$work/client.cnf#CNF#g; s#$work#WORK#g"; }
		echo "logical, reference: bash -o pipefail -c '$ref_logical'" | w
		echo "logical, mysecure:  mysecure backup --databases bench --keyfile WORK/kf"
		echo "                    (runs mariadb-dump --defaults-extra-file=/dev/fd/3 $dumpargs)"
		echo "physical, reference: bash -o pipefail -c '$ref_physical'" | w
		echo "physical, mysecure:  mysecure backup --type physical --keyfile WORK/kf"
		echo "                     (runs mariabackup --defaults-extra-file=FIFO --backup --stream=xbstream)"
		echo "restore, reference: bash -o pipefail -c '$ref_restore'   (after DROP DATABASE bench)" | w
		echo "restore, mysecure:  mysecure restore ID [--no-verify] --keyfile WORK/kf   (after DROP DATABASE bench)"
		echo "mysecure runs with MYSECURE_STORE=WORK/store and no daemon (MYSECURE_SOCKET names no socket);"
		echo "everything runs with TMPDIR=WORK/tmp; mariadbd --no-defaults --skip-networking --innodb-buffer-pool-size=512M --tmpdir=WORK/tmp."
		echo
		echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) at the end"
		echo "elapsed: $(($(date +%s) - start)) s"
		echo
		echo "full output: $log${prof:+; profiles: $prof}"
	} | tee -a "$log"
}

main "$@"; exit $?
