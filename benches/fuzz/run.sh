#!/usr/bin/env bash
# Builds the fuzz targets of benches/fuzz once and runs each for a bounded time or number of
# inputs.
#
#   benches/fuzz/run.sh --runs N               what CI runs: N inputs per target, from the
#                                              committed corpus only (in name order), same seed:
#                                              the same inputs on every machine, so a green run
#                                              here predicts CI's (fails if N are not run in 300 s)
#   benches/fuzz/run.sh [SECONDS_PER_TARGET]   a campaign (default 15 s each), growing the
#                                              local corpus under target/fuzz-corpus
#   benches/fuzz/run.sh merge                  minimize the committed corpus with what the
#                                              campaigns found (libFuzzer -merge=1)
#   FUZZ_TARGETS="redact slack" benches/fuzz/run.sh 600   only some targets
#   FUZZ_SEED=7 benches/fuzz/run.sh 600        other mutations than the default seed 1
#
# Engine: libFuzzer (the libfuzzer-sys crate compiles it with the system C++ compiler) on stable
# Rust, with the coverage instrumentation cargo-fuzz uses for `--sanitizer none`, added by
# rustc-sancov.sh to this repository's crates only. Any crash (a panic, including a failed
# invariant), timeout (-timeout) or out-of-memory (-rss_limit_mb, -malloc_limit_mb) fails the
# run, naming the target and the saved input under benches/fuzz/artifacts/<target>/. Reproduce
# one with: benches/fuzz/target/release/<target> <artifact>
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
all_targets=(redact trivy_report trivy_operator openai_response bedrock_response alertmanager slack teams scenario)
read -r -a targets <<<"${FUZZ_TARGETS:-${all_targets[*]}}"
[ "${#targets[@]}" -gt 0 ] || { echo "fuzz: FUZZ_TARGETS names no target" >&2; exit 2; }
usage() { echo "usage: $0 [SECONDS_PER_TARGET | --runs N | merge]" >&2; exit 2; }
positive() { case "${1:-}" in '' | *[!0-9]* | 0*) usage ;; esac; }
mode=run
secs=15
runs=
case "${1:-}" in
  merge) mode=merge ;;
  --runs) positive "${2:-}"; runs=$2 ;;
  '') ;;
  *) positive "$1"; secs=$1 ;;
esac

export CARGO_TARGET_DIR="$here/target"
export RUSTC_WRAPPER="$here/rustc-sancov.sh"
export RUSTFLAGS="--cfg fuzzing"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"

echo "fuzz: building ${#targets[@]} targets (release, debug assertions on)"
cargo build --manifest-path "$here/Cargo.toml" --release --locked --bins

bin="$here/target/release"
work="$here/target/fuzz-corpus"   # what runs add; the committed corpus is only read
failed=()

for t in "${targets[@]}"; do
  [ -x "$bin/$t" ] || { echo "fuzz: no target named $t" >&2; exit 2; }
  mkdir -p "$work/$t" "$here/artifacts/$t" "$here/corpus/$t"
  log="$here/target/fuzz-$t.log"
  if [ "$mode" = merge ]; then
    fresh="$here/target/merged-$t"
    rm -rf "$fresh" && mkdir -p "$fresh"
    "$bin/$t" -merge=1 -rss_limit_mb=2048 -timeout=10 "$fresh" "$here/corpus/$t" "$work/$t" >"$log" 2>&1 || {
      echo "fuzz: merging $t failed, see $log" >&2; exit 1; }
    rm -rf "$here/corpus/$t" && mv "$fresh" "$here/corpus/$t"
    echo "fuzz: $t corpus: $(find "$here/corpus/$t" -type f | wc -l) inputs, $(du -sk "$here/corpus/$t" | cut -f1) KiB"
    continue
  fi
  status=0
  # A fixed seed (FUZZ_SEED, default 1) and, with --runs, a count of inputs instead of a time,
  # the committed inputs in a fixed order and a fresh work corpus: the same code gets the same
  # mutations whatever the machine's speed or load (a time bound made CI, on a quieter machine,
  # try inputs a local run never had). Not strictly: code under test that iterates a HashMap
  # can vary the coverage feedback between processes, and with it what is kept and mutated.
  into="$work/$t"
  # libFuzzer writes what it finds into the first directory: never the committed corpus.
  corpora=("$into" "$here/corpus/$t")
  if [ -n "$runs" ]; then
    into="$here/target/fuzz-runs/$t"   # not the campaigns' corpus, which it would empty
    rm -rf "$into" && mkdir -p "$into"
    bound=(-runs="$runs" -max_total_time=300)
    # The committed inputs in name order (a directory is read in the file system's order, and
    # libFuzzer keeps that order among inputs of one size).
    list="$here/target/fuzz-runs/$t.seeds"
    find "$here/corpus/$t" -type f | LC_ALL=C sort | paste -sd, - >"$list"
    corpora=("$into")
    [ -s "$list" ] && corpora=(-seed_inputs=@"$list" "$into")
  else
    bound=(-max_total_time="$secs")
  fi
  started=$SECONDS
  "$bin/$t" -seed="${FUZZ_SEED:-1}" "${bound[@]}" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -print_final_stats=1 -artifact_prefix="$here/artifacts/$t/" \
    "${corpora[@]}" >"$log" 2>&1 || status=$?
  stats=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  if [ "$status" -eq 0 ] && [ -n "$runs" ]; then
    done_runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ "${done_runs:-0}" -lt "$runs" ]; then
      echo "fuzz: FAILED $t: only ${done_runs:-0} of $runs inputs within the 300 s bound; log: $log" >&2
      failed+=("$t")
      continue
    fi
  fi
  if [ "$status" -ne 0 ]; then
    what=$(grep -m1 -oE '(ERROR: libFuzzer: [a-z -]+|panicked at .*)' "$log" || echo "exit $status")
    artifact=$(grep -m1 -oE 'Test unit written to [^ ]+' "$log" | sed 's/Test unit written to //' || true)
    echo "fuzz: FAILED $t: $what; input: ${artifact:-(none saved)}; log: $log" >&2
    grep -m1 -A8 'panicked at' "$log" >&2 || tail -20 "$log" >&2
    failed+=("$t")
  else
    echo "fuzz: ok $t (${runs:+$runs inputs, }$((SECONDS - started)) s) ${stats:-}"
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
  exit 1
fi
