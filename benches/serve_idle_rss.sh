#!/usr/bin/env bash
# Idle memory of `sre-agent serve`: the release binary watching one empty namespace of the real
# API server harness (../shared/k8s-apiserver) as the limited user ai-sre, with a SQLite store and
# the approvals API on. Once /readyz says ready it idles IDLE_SECONDS, then prints VmRSS (resident
# now) and VmHWM (peak resident) from /proc/PID/status, sends SIGTERM and checks that it exits 0.
#
#   cargo build --release --bin sre-agent     # this script builds nothing: it runs target/release/sre-agent
#   bash benches/serve_idle_rss.sh [IDLE_SECONDS]    # default 30
#
# Needs: the harness up (`../shared/k8s-apiserver/k8s-apiserver up`; its `env` is read when
# SRE_K8S_ADMIN_KUBECONFIG is not set), kubectl, curl. It creates a namespace
# `sre-bench-idle-…`, applies the Role that `sre-agent rbac --namespace NS` generates, binds it to
# User ai-sre, and deletes the namespace when done (also on failure).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
idle=${1:-30}
[[ $idle =~ ^[0-9]+$ ]] || { echo "IDLE_SECONDS must be a whole number of seconds, not ${idle@Q}" >&2; exit 2; }
bin=$repo/target/release/sre-agent
[ -x "$bin" ] || { echo "no $bin: build it first with \`cargo build --release --bin sre-agent\`" >&2; exit 1; }
for tool in kubectl curl; do
  command -v "$tool" >/dev/null || { echo "needs $tool on PATH" >&2; exit 1; }
done
if [ -z "${SRE_K8S_ADMIN_KUBECONFIG:-}" ]; then
  harness=${SRE_K8S_HARNESS:-$repo/../shared/k8s-apiserver/k8s-apiserver}
  [ -x "$harness" ] || { echo "SRE_K8S_ADMIN_KUBECONFIG is not set and there is no harness at $harness (set SRE_K8S_HARNESS)" >&2; exit 1; }
  eval "$("$harness" env)"
fi
admin=(kubectl --kubeconfig="$SRE_K8S_ADMIN_KUBECONFIG" --request-timeout=20s)
"${admin[@]}" get --raw /readyz >/dev/null 2>&1 || {
  echo "the API server at ${SRE_K8S_APISERVER_URL:-?} is not ready: start it with \`../shared/k8s-apiserver/k8s-apiserver up\`" >&2
  exit 1
}

ns=sre-bench-idle-$$-$RANDOM
work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  "${admin[@]}" delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# The generated least-privilege Role, exactly as `sre-agent rbac` prints it (it also creates the
# ServiceAccount it binds); then the same Role bound to the harness's limited user.
"${admin[@]}" create namespace "$ns" >/dev/null
"$bin" rbac --namespace "$ns" | "${admin[@]}" apply -f - >/dev/null
"${admin[@]}" -n "$ns" create rolebinding sre-agent-ai-sre --role=sre-agent --user=ai-sre >/dev/null
# RBAC takes effect through the authorizer's cache: wait until ai-sre may watch deployments.
for _ in $(seq 50); do
  [ "$(kubectl --kubeconfig="$SRE_K8S_AGENT_KUBECONFIG" auth can-i watch deployments.apps -n "$ns" 2>/dev/null)" = yes ] && break
  sleep 0.2
done

# The approvals API token (never printed).
(umask 077; od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$work/api-token")

KUBECONFIG=$SRE_K8S_AGENT_KUBECONFIG "$bin" serve --namespace "$ns" --listen 127.0.0.1:0 \
  --store "sqlite:$work/runs.db" --approve api --api-token-file "$work/api-token" \
  --identity sre-bench-idle >"$work/serve.log" 2>&1 &
pid=$!

# The port it bound, from its JSON start-up log line, then /readyz.
port=""
for _ in $(seq 300); do
  kill -0 "$pid" 2>/dev/null || { echo "sre-agent serve exited early:" >&2; tail -20 "$work/serve.log" >&2; exit 1; }
  port=$(sed -n 's/.*"listen":"127\.0\.0\.1:\([0-9]*\)".*/\1/p' "$work/serve.log" | head -1)
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "sre-agent serve did not log its address within 30 s:" >&2; tail -20 "$work/serve.log" >&2; exit 1; }
ready=""
for _ in $(seq 300); do
  if curl -fsS "http://127.0.0.1:$port/readyz" 2>/dev/null | grep -q '"ready":true'; then ready=yes; break; fi
  kill -0 "$pid" 2>/dev/null || { echo "sre-agent serve exited before it was ready:" >&2; tail -20 "$work/serve.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$ready" ] || { echo "sre-agent serve was not ready within 30 s:" >&2; tail -20 "$work/serve.log" >&2; exit 1; }
echo "sre-agent serve (pid $pid) ready on 127.0.0.1:$port watching $ns; idling ${idle} s"
sleep "$idle"

kib() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$pid/status"; }
rss=$(kib VmRSS); hwm=$(kib VmHWM); threads=$(kib Threads)
metrics=$(curl -fsS "http://127.0.0.1:$port/metrics" | grep -E '^sre_agent_(runs_started|queue_depth)' | tr '\n' ' ' || true)

kill -TERM "$pid"
status=""
for _ in $(seq 300); do
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid" && status=0 || status=$?
    break
  fi
  sleep 0.1
done
[ -n "$status" ] || { echo "sre-agent serve did not exit within 30 s of SIGTERM" >&2; exit 1; }
pid=""

printf 'serve idle %s s: VmRSS %.1f MiB, VmHWM %.1f MiB, %s threads\n' \
  "$idle" "$(awk "BEGIN{print $rss/1024}")" "$(awk "BEGIN{print $hwm/1024}")" "$threads"
[ -n "$metrics" ] && echo "metrics: $metrics"
if [ "$status" -ne 0 ]; then
  echo "sre-agent serve exited $status after SIGTERM (expected 0):" >&2
  tail -20 "$work/serve.log" >&2
  exit 1
fi
grep -q '"message":"stopped"' "$work/serve.log" || { echo "no \"stopped\" log line after SIGTERM" >&2; tail -20 "$work/serve.log" >&2; exit 1; }
echo "SIGTERM: exited 0"
# An idle service that keeps failing is not idle: show what it warned about.
warnings=$(grep -cE '"level":"(WARN|ERROR)"' "$work/serve.log" || true)
if [ "$warnings" -gt 0 ]; then
  echo "log: $warnings warning/error line(s), the first ones:"
  grep -E '"level":"(WARN|ERROR)"' "$work/serve.log" | head -5
fi
