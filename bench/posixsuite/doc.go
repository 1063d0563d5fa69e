// Package posixsuite runs go-fuse's POSIX conformance tests
// (github.com/hanwen/go-fuse/v2/posixtest, at the version in go.mod) on a
// directory named by $POSIXSUITE_DIR: a plain directory, a gocryptfs mount
// or a mysecure mount. Its only test is the runner: bench/posixsuite.sh
// (make posix-suite) builds it with `go test -c`, runs it on all three and
// counts the failures; integration's TestConformance runs it on a mysecure
// mount and holds the count to the one in docs/limitations.md.
//
// It has no exported API and must not be imported.
package posixsuite
