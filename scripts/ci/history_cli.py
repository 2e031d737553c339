"""Proves the command line works on the files a CI run left: `npuperf history --case t32-p64` shows
at least as many runs as the suite ran here, and `npuperf compare A B` on the A/A pair runs and gives
a verdict (whether that pair regressed is the A/A step's question, which re-runs a false alarm;
two result files cannot be re-run, so this step asks only that the command judges).

    python scripts/ci/history_cli.py RUNS A.json B.json
"""

from __future__ import annotations

import re
import subprocess
import sys


def npuperf(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "npuperf", *args], capture_output=True, text=True, encoding="utf-8", check=False
    )


def main(runs: str, a: str, b: str) -> int:
    shown = npuperf("history", "--case", "t32-p64")
    print(shown.stdout, end="")
    rows = len(re.findall(r"^ +[0-9]+  ", shown.stdout, flags=re.M))
    if shown.returncode != 0 or rows < int(runs):
        print(
            f"ci: npuperf history --case t32-p64 shows {rows} run(s); expected the {runs} runs of this CI",
            file=sys.stderr,
        )
        return 1
    # wide thresholds: this judges the command, not the pair
    compared = npuperf("compare", a, b, "--tolerance", "0.25", "--grid-tolerance", "0.10")
    print("\n".join(compared.stdout.splitlines()[-3:]))
    if compared.returncode > 1 or not re.search(r"^verdict: ", compared.stdout, flags=re.M):
        print(f"ci: npuperf compare did not give a verdict (exit {compared.returncode})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:4]))
