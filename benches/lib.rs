//! Shared helpers for the benchmarks in this directory.
