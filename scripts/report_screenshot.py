"""Make docs/report.png: the HTML report as the team sees it in the morning.

Runs ``pytest perf_tests`` (the embedded model, the repository's settings) twice into a
temporary folder with its own history, so the page has a trend, then has headless Chromium
draw the second run's report. The page is cropped to its top (the banner, the charts, the
planner and the trend).

    python scripts/report_screenshot.py [--out docs/report.png] [--height 2600]

Needs Chromium (apt-get install chromium) and, for the Chinese prompts to show, a CJK font
(apt-get install fonts-noto-cjk; Windows ships Microsoft YaHei).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "report.png")
    p.add_argument("--height", type=int, default=2600, help="pixels of the page to keep (default: %(default)s)")
    p.add_argument("--width", type=int, default=1280)
    args = p.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        print("report_screenshot: no Chromium (apt-get install chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="npuperf-shot-") as tmp:
        out = Path(tmp)
        for run in (1, 2):
            print(f"run {run} of 2: pytest perf_tests", flush=True)
            cmd = [sys.executable, "-m", "pytest", "perf_tests", "-q", "-p", "no:randomly", "--no-header"]
            cmd += [f"--html={out / 'perf-report.html'}", f"--history={out / 'history.sqlite'}"]
            cmd += [f"--results-json={out / 'results.json'}", f"--junitxml={out / 'junit.xml'}"]
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            print(proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-500:])
            if proc.returncode not in (0, 1):  # a regression (1) still makes a report worth showing
                print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
                return proc.returncode
        page = out / "perf-report.html"
        shot = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
        shot += ["--virtual-time-budget=3000", f"--window-size={args.width},{args.height}"]
        shot += [f"--screenshot={args.out}", page.as_uri()]
        subprocess.run(shot, check=True, capture_output=True, timeout=180)
    print(f"screenshot: {args.out} ({args.out.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
