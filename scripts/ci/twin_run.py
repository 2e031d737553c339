"""Proves a shape twin built from scratch runs with the decode floor: its two cases measured, both
carrying their floor and an efficiency in (0, 1], the 8-token case passing and the 64-token one
failing its budget as infeasible (the floor's arithmetic in the log), so the run exits 1.

    python scripts/ci/twin_run.py RESULTS.json LOG EXIT_STATUS
"""

from __future__ import annotations

import json
import sys


def main(results: str, log_path: str, status: str) -> int:
    with open(results, encoding="utf-8") as handle:
        doc = json.load(handle)
    with open(log_path, encoding="utf-8") as handle:
        log = handle.read()
    cases = {c["id"]: c for c in doc["cases"]}
    for cid, c in cases.items():
        f = c["floor"] or {}
        print(
            f"twin {cid}: median {c['summary']['latency_ms']['median']:.1f} ms, TPOT "
            f"{c['summary']['tpot_ms']['median']:.2f} ms, floor {f.get('decode_ms_per_token', 0):.2f} ms/token, "
            f"efficiency {f.get('efficiency', 0):.0%}, {c['outcome']}"
        )
    ok = (
        int(status) == 1
        and set(cases) == {"t8-p8", "t64-p8"}
        and cases["t8-p8"]["outcome"] != "failed"
        and cases["t64-p8"]["floor"]["feasible"] is False
        and "the decode floor makes it impossible here: infeasible: 64 tokens" in log
        and all(0 < (c["floor"] or {}).get("efficiency", 0) <= 1 for c in cases.values())
    )
    if not ok:
        print(
            "ci: the shape twin's run must build, measure both cases with their floor, and fail t64-p8 as "
            f"infeasible (exit {status})",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:4]))
