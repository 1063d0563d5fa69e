// Package ndb onboards MySQL Cluster (NDB) nodes of this host onto the
// encrypted mount: it discovers data and management nodes (running
// processes, my.cnf, config.ini, ndb_config), and declares the plan steps
// (package internal/plan) of `ndb enable` and `ndb disable`: stop a node
// through the management client, move its directories into @ndbdata,
// add rules for ndbd/ndbmtd (and ndb_mgmd) bound to them, restart it
// with its original arguments (never --initial) and wait until the
// management server reports it started. Rolling across hosts goes
// through the Host interface.
//
// It never prints: progress goes to a Log callback. It reads /proc only
// for the processes of NDB programs. It holds no credential of its own:
// what a rolling change sends on each host's stdin (RemoteRoll.Stdin)
// is the caller's, who wipes it.
package ndb
