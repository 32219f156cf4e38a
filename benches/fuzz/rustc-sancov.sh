#!/usr/bin/env bash
# RUSTC_WRAPPER for the fuzz build: adds libFuzzer's coverage instrumentation (the stable
# codegen flags cargo-fuzz uses for `--sanitizer none`) to this repository's crates and the
# fuzz targets only. Dependencies are built plain: instrumenting all ~350 of them made the cold
# build slower (see README "Fuzzing") and their coverage is not what the targets explore; the
# generic serde code our types instantiate is compiled, and so instrumented, in our crates.
set -euo pipefail
rustc="$1"
shift
case "${CARGO_PKG_NAME:-}" in
  sre-core | sre-llm | sre-tools | sre-fuzz)
    exec "$rustc" "$@" \
      -Cpasses=sancov-module \
      -Cllvm-args=-sanitizer-coverage-level=4 \
      -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
      -Cllvm-args=-sanitizer-coverage-pc-table \
      -Cllvm-args=-sanitizer-coverage-trace-compares
    ;;
  *) exec "$rustc" "$@" ;;
esac
