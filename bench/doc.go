// Package bench holds mysecure's benchmarks: Go benchmarks of the content
// format against raw crypto/aes GCM (format_test.go) and the scripts and
// small programs under cmd/ that run them and compute ratios
// (bench/format.sh, bench/kdf.sh). Results are reported in
// docs/performance.md.
//
// Nothing here asserts on time: benchmarks measure, people judge. The
// package has no exported API and must not be imported.
package bench
