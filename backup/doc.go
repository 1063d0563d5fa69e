// Package backup runs encrypted MySQL/MariaDB backups: logical dumps
// (mariadb-dump/mysqldump) and physical backups (mariabackup/xtrabackup
// --stream=xbstream). A tool's stdout goes through SHA-256, zstd and the
// encfs content format into the @mysqlbackup category of the store; no
// plaintext byte touches disk and memory stays bounded. It also keeps the
// protected client credentials, the catalog of complete backups with their
// manifests, verification, retention and restore.
//
// Layout inside the category (names and contents encrypted like every
// other file of the store):
//
//	.mysecure/credentials/NAME.cnf      client option file for the tools
//	.mysecure/backups/ID/manifest.json  the manifest (written last)
//	.mysecure/backups/ID/data.zst       the compressed tool output
//	.mysecure/backups/.partial-ID/      a backup being written
//
// A backup directory is renamed from .partial-ID to ID only once its data
// and manifest are durable, so the catalog never lists an incomplete
// backup.
//
// The package never prints: it reports through the Progress callback and
// the *slog.Logger it is given. Credentials reach the tools only through a
// pipe (--defaults-extra-file=/dev/fd/3): never argv, environment, logs or
// a file on disk. It must not import cobra or viper.
package backup
