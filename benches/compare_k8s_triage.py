#!/usr/bin/env python3
"""Compare the Rust triage of a 10,000-pod PodList with the same triage in Python on the stack of
the original Python proof of concept: the `kubernetes` client's deserialization into V1Pod objects,
then the same analyzer rules. Prints both timings (best of N) and the ratio from one run.

    pip install kubernetes
    python3 benches/compare_k8s_triage.py [--pods 10000] [--runs 3] [--lean]

The Rust side is `sre-benches`' `triage-file` binary (parse into pod facts + triage), built in
release mode by this script; both sides read the same file made by `gen-podlist`: the realistic
list (managedFields, annotations, mixed states; 65 MB for 10,000 pods), or with --lean the older
list of real pod objects without managedFields (31 MB).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

try:
    from kubernetes.client import ApiClient
except ImportError:
    sys.exit("this comparison needs the kubernetes client: pip install kubernetes")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESTART_STORM = 5
PULL = {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable"}
CONFIG = {"CreateContainerConfigError", "CreateContainerError"}


class _Response:
    """What ApiClient.deserialize expects from an HTTP response."""

    def __init__(self, data):
        self.data = data


def owner(pod):
    refs = pod.metadata.owner_references or []
    ref = next((r for r in refs if r.controller), refs[0] if refs else None)
    if ref is None:
        return ("Pod", pod.metadata.name)
    if ref.kind != "ReplicaSet":
        return (ref.kind, ref.name)
    h = (pod.metadata.labels or {}).get("pod-template-hash")
    if h and ref.name.endswith("-" + h):
        return ("Deployment", ref.name[: -len(h) - 1])
    return ("ReplicaSet", ref.name)


def analyze(pod):
    """The analyzer rules of sre_tools::k8s::analyze, over kubernetes-client objects."""
    out = []
    st = pod.status
    if st is None:
        return out
    for cs in (st.init_container_statuses or []) + (st.container_statuses or []):
        flagged = False
        state, last = cs.state, cs.last_state
        waiting = state.waiting if state else None
        term = state.terminated if state else None
        last_term = last.terminated if last else None
        if waiting is not None:
            if waiting.reason == "CrashLoopBackOff":
                out.append(("CrashLoopBackOff", cs.name, last_term.exit_code if last_term else None))
                flagged = True
            elif waiting.reason in PULL:
                out.append(("ImagePull", cs.name, waiting.reason))
                flagged = True
            elif waiting.reason in CONFIG:
                out.append(("CreateContainerConfigError", cs.name, waiting.message))
                flagged = True
        for t in (term, last_term):
            if t is not None and t.reason == "OOMKilled":
                out.append(("OOMKilled", cs.name, t.exit_code))
                flagged = True
                break
        if not flagged and cs.restart_count >= RESTART_STORM:
            out.append(("RestartStorm", cs.name, cs.restart_count))
    if st.phase == "Pending":
        for c in st.conditions or []:
            if c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable":
                out.append(("Unschedulable", None, c.message))
    if st.phase == "Failed" and not out:
        out.append(("PodFailed", None, st.reason))
    return out


def deserialize_pod_list(raw):
    """The client's own deserialization of an HTTP body (the signature changed in client 35)."""
    client = ApiClient()
    try:
        return client.deserialize(raw.decode(), "V1PodList", "application/json")
    except TypeError:
        return client.deserialize(_Response(raw), "V1PodList")


def python_triage(path):
    with open(path, "rb") as f:
        raw = f.read()
    start = time.perf_counter()
    pod_list = deserialize_pod_list(raw)
    groups = {}
    for pod in pod_list.items:
        if pod.metadata.deletion_timestamp is not None:
            continue  # terminating: on its way out, not a finding
        findings = analyze(pod)
        if findings:
            groups.setdefault((pod.metadata.namespace,) + owner(pod), []).extend(findings)
    return (time.perf_counter() - start) * 1000.0, len(groups)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--lean", action="store_true", help="the older list without managedFields")
    a = ap.parse_args()
    cargo = ["cargo", "run", "-q", "--release", "--locked", "-p", "sre-benches", "--bin"]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "pods.json")
        shape = ["--lean"] if a.lean else []
        subprocess.run(cargo + ["gen-podlist", "--", str(a.pods), path] + shape, cwd=ROOT, check=True)
        out = subprocess.run(cargo + ["triage-file", "--", path, str(a.runs)], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
        fields = dict(kv.split("=") for kv in out.split())
        rust_ms, rust_workloads = float(fields["rust_ms"]), int(fields["workloads"])
        best, workloads = None, None
        for _ in range(a.runs):
            ms, workloads = python_triage(path)
            best = ms if best is None else min(best, ms)
    if workloads != rust_workloads:
        sys.exit(f"results differ: python found {workloads} unhealthy workloads, rust {rust_workloads}")
    print(f"pods={a.pods} unhealthy_workloads={workloads}")
    print(f"rust   parse+triage: {rust_ms:9.1f} ms")
    print(f"python parse+triage: {best:9.1f} ms  (kubernetes {__import__('kubernetes').__version__}, json + ApiClient.deserialize)")
    print(f"ratio: {best / rust_ms:.1f}x faster in Rust")


if __name__ == "__main__":
    main()
