// Package bench holds the performance table of otelcfg (issue 7): the
// micro benchmarks in this directory (go test -bench), the load generator
// (bench/load), the baseline programs (bench/cmd/parseyaml,
// bench/cmd/bareproxy) and the harness that runs everything and prints one
// table (bench/cmd/bench, run by `make bench`). See BENCHMARKS.md.
package bench
