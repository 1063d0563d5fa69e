#!/usr/bin/env bash
# demo.sh: the main job on a built-in sandbox (run by `make demo`).
#
# Creates a volume in ./demo-sandbox, encrypts a small "mysqldump" file, shows
# that the ciphertext holds none of it, decrypts it back, and decrypts it again
# "on another machine" from a copy of the volume config alone. Secrets are
# random, kept in mode-0600 files in the sandbox and handed over as files:
# never on the command line.
set -euo pipefail
cd "$(dirname "$0")/.."

M=${MYSECURE:-bin/mysecure}
S=demo-sandbox
rm -rf "$S"
mkdir -p "$S"
chmod 700 "$S"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "credentials: a passphrase and a salt, random, in private files"
umask 077
head -c 24 /dev/urandom | base64 > "$S/passphrase"
head -c 12 /dev/urandom | base64 > "$S/salt"
ls -l "$S/passphrase" "$S/salt"
creds=(--passphrase-file "$S/passphrase" --salt-file "$S/salt")

step "mysecure init: a volume with the default Argon2id cost (about a second)"
time $M --store "$S/store" init "${creds[@]}"
$M --store "$S/store" key list

step "a plaintext dump"
cat > "$S/dump.sql" <<'SQL'
-- MariaDB dump (demo)
CREATE TABLE customers (id INT PRIMARY KEY, card VARCHAR(19));
INSERT INTO customers VALUES (1, '4111-1111-1111-1111');
INSERT INTO customers VALUES (2, '5500-0000-0000-0004');
SQL
cat "$S/dump.sql"

step "mysecure file encrypt dump.sql dump.sql.msec (category @mysqlbackup)"
$M --store "$S/store" file encrypt "${creds[@]}" "$S/dump.sql" "$S/dump.sql.msec"
ls -l "$S/dump.sql" "$S/dump.sql.msec"
echo "ciphertext (header: magic MYSEC, version, file ID, key ID; then sealed blocks):"
xxd "$S/dump.sql.msec" | head -8
if grep -q '4111-1111' "$S/dump.sql.msec"; then
	echo "demo: FAILED: plaintext found in the ciphertext" >&2
	exit 1
fi
echo "grep for the card number in the ciphertext: not found"

step "mysecure file decrypt: back to the same bytes"
$M --store "$S/store" file decrypt "${creds[@]}" "$S/dump.sql.msec" "$S/dump.sql.back"
cmp "$S/dump.sql" "$S/dump.sql.back" && echo "identical"

step "another machine: only mysecure.conf and the encrypted file travel"
mkdir -p "$S/elsewhere/store"
cp "$S/store/mysecure.conf" "$S/elsewhere/store/"
cp "$S/dump.sql.msec" "$S/elsewhere/"
$M --store "$S/elsewhere/store" file decrypt "${creds[@]}" "$S/elsewhere/dump.sql.msec" - | head -3

step "a wrong salt is refused (exit code 3)"
echo "not-the-salt" > "$S/wrong-salt"
set +e
$M --store "$S/elsewhere/store" file decrypt --passphrase-file "$S/passphrase" --salt-file "$S/wrong-salt" \
	"$S/elsewhere/dump.sql.msec" "$S/elsewhere/never"
rc=$?
set -e
echo "exit code: $rc"
[ "$rc" -eq 3 ] || { echo "demo: FAILED: expected exit code 3" >&2; exit 1; }

step "a flipped bit is an error, never wrong plaintext (exit code 5)"
cp "$S/dump.sql.msec" "$S/tampered.msec"
printf '\x00' | dd of="$S/tampered.msec" bs=1 seek=60 conv=notrunc status=none
set +e
$M --store "$S/store" file decrypt "${creds[@]}" "$S/tampered.msec" "$S/tampered.out"
rc=$?
set -e
echo "exit code: $rc"
[ "$rc" -eq 5 ] || { echo "demo: FAILED: expected exit code 5" >&2; exit 1; }

step "done: everything is in $S/ (make clean removes it)"
