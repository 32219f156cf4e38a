#!/usr/bin/env python3
"""Compare parse + summary of a synthetic 50 MB Trivy report in Rust with the same in CPython
(`json` module + the same counting), and print the ratio from one run (best of N each).

    python3 benches/compare_trivy_summary.py [--bytes 50000000] [--runs 3]

The Rust side is `sre-benches`' `summarize-file` binary, which also writes the report.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORDER = {"CRITICAL": 0, "HIGH": 1, "MEDIUM": 2, "LOW": 3}


def score(v):
    cvss = v.get("CVSS") or {}
    v3 = [c["V3Score"] for c in cvss.values() if c.get("V3Score") is not None]
    v2 = [c["V2Score"] for c in cvss.values() if c.get("V2Score") is not None]
    return max(v3) if v3 else (max(v2) if v2 else -1.0)


def summarize(raw):
    report = json.loads(raw)
    entries = [0] * 5
    worst = {}
    fixable = unfixable = 0
    seen = set()
    candidates = []
    for r in report.get("Results") or []:
        for v in r.get("Vulnerabilities") or []:
            sev = ORDER.get((v.get("Severity") or "").upper(), 4)
            entries[sev] += 1
            vid = v.get("VulnerabilityID") or ""
            worst[vid] = min(worst.get(vid, sev), sev)
            if (v.get("FixedVersion") or "").strip():
                fixable += 1
            else:
                unfixable += 1
            key = (vid, v.get("PkgName"))
            if key not in seen:
                seen.add(key)
                candidates.append(v)
    unique = [0] * 5
    for s in worst.values():
        unique[s] += 1
    candidates.sort(key=lambda v: (ORDER.get((v.get("Severity") or "").upper(), 4), -score(v), v.get("VulnerabilityID")))
    return sum(entries), sum(unique), fixable, unfixable, candidates[:5]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bytes", type=int, default=50_000_000)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trivy.json")
        cmd = ["cargo", "run", "-q", "--release", "--locked", "-p", "sre-benches", "--bin", "summarize-file", "--",
               path, str(a.runs), "--generate", str(a.bytes)]
        out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
        fields = dict(kv.split("=") for kv in out.split())
        with open(path, "rb") as f:
            raw = f.read()
        best = None
        for _ in range(a.runs):
            start = time.perf_counter()
            entries, unique, _, _, _ = summarize(raw)
            ms = (time.perf_counter() - start) * 1000.0
            best = ms if best is None else min(best, ms)
    if (entries, unique) != (int(fields["entries"]), int(fields["unique"])):
        sys.exit(f"results differ: python {entries}/{unique}, rust {fields['entries']}/{fields['unique']}")
    rust = float(fields["rust_ms"])
    print(f"report={int(fields['bytes']) / 1e6:.1f} MB entries={entries} unique={unique}")
    print(f"rust    parse+summary: {rust:9.1f} ms")
    print(f"CPython parse+summary: {best:9.1f} ms  (json module, Python {sys.version.split()[0]})")
    print(f"ratio: {best / rust:.1f}x faster in Rust")


if __name__ == "__main__":
    main()
