// Package engine sets up a server's own data-at-rest encryption ("engine
// mode"): MariaDB's file_key_management plugin, or MySQL 8.4's
// component_keyring_file, with the key material kept in @protected on the
// mysecure mount where only the fingerprinted server binary (the real
// binary behind the guard on a hardened server) may read it.
//
// It declares plan steps (package internal/plan): the key file written
// straight into the mount in a move session (no plaintext key ever rests
// on disk), the access rule(s) on it, the server's option file, and, on a
// hardened server, the guard's pins of the key plugin and the encryption
// settings. It reads the encryption progress from information_schema,
// plans 'engine disable' (online decryption, then the key plugin off after
// a restart) and, for MySQL, writes the keyring component's manifest and
// configuration.
//
// It never prints, never logs key material, and never puts a key in argv
// or the environment. It must not import cobra or viper.
package engine
