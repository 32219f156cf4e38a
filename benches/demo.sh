#!/usr/bin/env bash
# Wall time and peak memory (RSS) of one full `sre-agent demo` run of a scenario, as a user runs it:
# the release binary starts the simulator, runs the playbook brain with auto approval, patches,
# verifies, prints the report and exits. Best wall time and largest peak RSS of N runs.
#
#   bash benches/demo.sh [SCENARIO] [RUNS]      # default: critical-cve 10
#
# Targets (issue "sre-agent CLI"): under 1 s and under 50 MB peak RSS for critical-cve.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:-critical-cve}
runs=${2:-10}
cargo build -q --release --locked --bin sre-agent
bin=target/release/sre-agent
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (Debian package: time)" >&2; exit 1; }
best=""; peak=0
for _ in $(seq "$runs"); do
  tmp=$(mktemp)
  /usr/bin/time -o "$tmp" -f '%e %M' "$bin" demo --scenario "$scenario" --approve auto --json >/dev/null 2>&1 || true
  out=$(tail -1 "$tmp"); rm -f "$tmp"
  wall=${out% *}; rss=${out#* }
  if [ -z "$best" ] || awk "BEGIN{exit !($wall < $best)}"; then best=$wall; fi
  [ "$rss" -gt "$peak" ] && peak=$rss
done
printf 'demo %s: best wall %s s over %s runs, peak RSS %.1f MB\n' "$scenario" "$best" "$runs" "$(awk "BEGIN{print $peak/1024}")"
