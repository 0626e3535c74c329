// Package sim is a simulated imaging modality: SyntheticStudy generates
// CT-like instances of any size as they are read, for the demo, tests and
// benchmarks (devices/sim is its counterpart for bedside monitors).
package sim
