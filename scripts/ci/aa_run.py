"""Proves an A/A run (the same code against baselines recorded minutes before) judged everything
and flagged nothing: every case compared, no case or metric REGRESSED, the grid compared; and that
the backend sections ran for real: the QNN checks on the HTP simulator, the service section
against the reference server on loopback, the seed request from Python and curl.

    python scripts/ci/aa_run.py RESULTS.json
"""

from __future__ import annotations

import json
import sys

SERVICE_CHECKS = ("service health", "benchmark agreement", "bad inputs", "concurrency", "http overhead", "seed request")


def problems(doc: dict) -> list[str]:  # type: ignore[type-arg]
    cases = doc["cases"]
    checks = [(c["id"], k) for c in cases for k in c["checks"] if k["name"].endswith("vs baseline")]
    compared = [k for _, k in checks if k["outcome"] != "no baseline"]
    regressed = [f"{cid} {k['name']}" for cid, k in checks if k["outcome"] == "failed"]
    inconclusive = [f"{cid} {k['name']}" for cid, k in checks if k["outcome"] == "inconclusive"]
    grid = (doc["session"].get("grid") or {}).get("outcome", "missing")
    print(
        f"A/A: {len(compared)} of {len(checks)} comparisons made, regressed: {regressed or 'none'}, "
        f"inconclusive: {inconclusive or 'none'}, grid: {grid}"
    )
    out = []
    if not cases or len(compared) != len(checks) or regressed or grid not in ("ok", "inconclusive"):
        out.append("A/A check failed: every case must be compared, none may regress, the grid must be compared")
    backend = {c["name"]: c["outcome"] for c in doc["session"]["backend_checks"]}
    print(f"backend checks (NPU on the HTP simulator, service on loopback): {backend}")
    if any(backend.get(name) != "ok" for name in ("runs on NPU", "perf mode", "compile cache")):
        out.append("the QNN checks (placement, perf mode, compile cache) must run and pass on the HTP simulator")
    service = doc["session"].get("service") or {}
    print(
        f"service: {service.get('url')} (started by the suite: {service.get('started_by_suite')}), "
        f"{len(service.get('http', []))} token budgets over HTTP, checks {[backend.get(n) for n in SERVICE_CHECKS]}"
    )
    if (
        not service.get("started_by_suite")
        or not service.get("http")
        or any(backend.get(n) != "ok" for n in SERVICE_CHECKS)
    ):
        out.append("the service section must run and pass against the reference server on loopback")
    seed = next((c["message"] for c in doc["session"]["backend_checks"] if c["name"] == "seed request"), "")
    if "curl" not in seed:
        out.append(f"the seed request must be sent from Python and from curl: {seed}")
    return out


def main(path: str) -> int:
    with open(path, encoding="utf-8") as handle:
        found = problems(json.load(handle))
    for problem in found:
        print(f"ci: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
