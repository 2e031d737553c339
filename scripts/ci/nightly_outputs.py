"""Proves a suite run left what a nightly publishes: every latency case's figures as properties of
its testcase in the JUnit XML, and `npuperf summary` markdown with a case table.

    python scripts/ci/nightly_outputs.py JUNIT.xml RESULTS.json
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET


def main(junit: str, results: str) -> int:
    cases = [tc for tc in ET.parse(junit).iter("testcase") if "test_latency[" in tc.get("name", "")]
    with_figures = [
        tc for tc in cases if any(p.get("name") == "npuperf.latency_median_ms" for p in tc.iter("property"))
    ]
    print(f"JUnit XML: {len(cases)} latency cases, {len(with_figures)} with their figures as properties")
    if not cases or len(with_figures) != len(cases):
        print("ci: every latency case must carry its figures in the JUnit XML", file=sys.stderr)
        return 1
    summary = subprocess.run(
        [sys.executable, "-m", "npuperf", "summary", results, "--link", "HTML report=reports/perf-report.html"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
    )
    print("\n".join(summary.stdout.splitlines()[:3]))
    if summary.returncode != 0 or "\n| case | status |" not in "\n" + summary.stdout:
        print(
            f"ci: npuperf summary gave no case table (exit {summary.returncode}): {summary.stderr[-500:]}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], sys.argv[2]))
