#!/usr/bin/env bash
# setup-deps.sh: install the Debian packages mysecure and its tests need, when missing.
#
# Used by `make test`, `make demo` and `make bench`. Safe to run again: it only calls
# apt-get when a package is not installed. Needs root (or sudo) to install.
#
# Packages and why:
#   fuse3            /dev/fuse helpers (fusermount3) for the encrypted mount
#   mariadb-server   the real mariadbd the integration tests start in temp dirs
#   mariadb-client   mariadb, mariadb-dump
#   mariadb-backup   mariadb-backup, mbstream
#   openssh-server   a real sshd on loopback for the SSH tests
#   gocryptfs        side-by-side benchmark reference
#   sysbench         OLTP benchmark
#   xxd, procps      demo output (hex dump) and process inspection in tests
#   systemd          systemd-analyze checks the timers 'schedule install --systemd' writes
#   passwd           useradd/groupadd for the backup-group test user
#   zstd             the plain-tool side of bench/backup.sh
#   python3-pykmip   pykmip-server: the KMIP key server the kms key slot tests start on loopback
#   fio              the soak test's verifying writers (make stress)
#   golang-go is not needed: versitygw (the S3 gateway of the object store tests) is built
#   with the Go toolchain that builds mysecure, below
set -euo pipefail

# versitygw: an S3-compatible gateway over a POSIX directory, for the
# backup-targets tests (integration/s3_test.go). Built once into /usr/local/bin.
VERSITYGW_VERSION=v1.8.0
if ! command -v versitygw >/dev/null 2>&1 && command -v go >/dev/null 2>&1; then
	echo "setup-deps: building versitygw $VERSITYGW_VERSION into /usr/local/bin" >&2
	if [ "$(id -u)" -eq 0 ]; then
		GOBIN=/usr/local/bin go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" >&2
	else
		tmp=$(mktemp -d)
		GOBIN="$tmp" go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" >&2
		sudo install -m 0755 "$tmp/versitygw" /usr/local/bin/versitygw
		rm -rf "$tmp"
	fi
fi

pkgs=(fuse3 mariadb-server mariadb-client mariadb-backup openssh-server gocryptfs sysbench xxd procps systemd passwd zstd python3-pykmip fio)

missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

echo "setup-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO="sudo"
	else
		echo "setup-deps: error: need root to install ${missing[*]}" >&2
		echo "setup-deps: hint: run as root, or install them with apt-get yourself" >&2
		exit 1
	fi
fi

# Package scripts must not start system services (mariadb, ssh) on this machine:
# the tests start their own private instances. policy-rc.d 101 = "action not allowed".
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
	$SUDO chmod 755 "$policy"
	created_policy=1
fi
cleanup() { if [ "$created_policy" = 1 ]; then $SUDO rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >&2
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
