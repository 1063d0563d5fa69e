// Package procs remembers GOMAXPROCS as the Go runtime chose it at start
// (the CPUs, a container's CPU limit, or $GOMAXPROCS), before anything in
// the process raised it. The mount daemon raises GOMAXPROCS above the CPUs
// for go-fuse's readers (encfs/fusefs/sched.go); work that should scale
// with the CPUs the process may really use asks Initial.
package procs

import "runtime"

// initial is read during package initialization, before main runs.
var initial = runtime.GOMAXPROCS(0)

// Initial is GOMAXPROCS as it was when the process started.
func Initial() int { return initial }
