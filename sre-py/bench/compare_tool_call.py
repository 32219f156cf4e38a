"""One tool call through the binding vs the same call in pure Python with the `kubernetes` client,
both against the embedded simulator; prints the per-call times (best of N rounds) and the ratio.

    pip install kubernetes      # in the venv where sre_agent is installed (maturin develop)
    maturin develop --release   # a debug build measures the debug build
    python3 sre-py/bench/compare_tool_call.py [--calls 200] [--scenario large-cluster --namespace bulk-0]

The call: list the pods of a namespace and render one line per pod (phase/reason, readiness,
restarts, images) — `k8s_list_pods` in Rust, the equivalent in Python.
"""

import argparse
import time

from kubernetes import client

from sre_agent import SreToolkit


def python_list_pods(api: client.CoreV1Api, namespace: str) -> str:
    pods = api.list_namespaced_pod(namespace).items
    lines = [f"{len(pods)} pods in {namespace}:"]
    for p in pods:
        statuses = p.status.container_statuses or []
        waiting = [s.state.waiting.reason for s in statuses if s.state and s.state.waiting]
        state = waiting[0] if waiting else p.status.phase
        ready = sum(1 for s in statuses if s.ready)
        restarts = sum(s.restart_count for s in statuses)
        images = ",".join(c.image for c in p.spec.containers)
        lines.append(f"{p.metadata.name} {state} {ready}/{len(p.spec.containers)} ready, {restarts} restarts, {images}")
    return "\n".join(lines)


def best(fn, calls: int, rounds: int = 3) -> float:
    result = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        result = min(result, (time.perf_counter() - start) / calls)
    return result * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--scenario", default="bad-release")
    ap.add_argument("--namespace", default="shop")
    a = ap.parse_args()
    tk = SreToolkit(simulator=a.scenario)
    ns = a.namespace
    tool = {t.name: t for t in tk.get_tools()}["k8s_list_pods"]
    cfg = client.Configuration()
    cfg.host = tk.native.url
    api = client.CoreV1Api(client.ApiClient(cfg))
    assert python_list_pods(api, ns).splitlines()[0] == tool.invoke({"namespace": ns}).splitlines()[0]
    rust = best(lambda: tool.invoke({"namespace": ns}), a.calls)
    native = best(lambda: tk.native.call("k8s_list_pods", '{"namespace": "%s"}' % ns), a.calls)
    py = best(lambda: python_list_pods(api, ns), a.calls)
    print(f"{a.scenario}/{ns}")
    print(f"binding (LangChain tool -> Rust -> HTTP -> simulator): {rust:8.0f} us per call ({native:.0f} us of it in the native call)")
    print(f"pure Python (kubernetes client -> HTTP -> simulator):  {py:8.0f} us per call")
    print(f"ratio: {py / rust:.1f}x faster through the binding")
    tk.native.close()


if __name__ == "__main__":
    main()
