"""Proves the suite ran on real Qualcomm Genie: Genie's C API on the HTP simulator, both Genie
checks (backend, perf mode read back from the dialog) run and passed, the whole grid ran with
every case generating its budget, and every case shows its decode CPU labelled as the simulator's.

    python scripts/ci/genie_run.py RESULTS.json
"""

from __future__ import annotations

import json
import sys


def problems(doc: dict) -> list[str]:  # type: ignore[type-arg]
    env = doc["environment"]
    genie = [c for c in doc["session"]["backend_checks"] if c["message"].startswith("genie_config.json:")]
    short = [c["id"] for c in doc["cases"] if c["tokens_generated"] != [c["new_tokens"]] * 2]
    cpu = [k for c in doc["cases"] for k in c["checks"] if k["name"] == "CPU during decode"]
    print(
        f"Genie: backend {env.get('Engine genie backend')}, provider {env.get('Provider')}, "
        f"policy {env.get('Engine performance policy')}, {len(doc['cases'])} cases, checks "
        f"{[(c['name'], c['outcome']) for c in genie]}"
    )
    print(f"Genie phases: {[c['phases_ms']['order'] for c in doc['cases']][:1]}; decode CPU cores (simulator): "
          f"{sorted(round(k['value'], 2) for k in cpu)[::5]}")  # fmt: skip
    out = []
    if env.get("Engine genie backend") != "capi" or env.get("Provider") != "QnnHtp-simulator":
        out.append("the genie engine must run Genie's C API on the HTP simulator")
    if sorted(c["name"] for c in genie) != ["perf mode", "runs on NPU"] or any(c["outcome"] != "ok" for c in genie):
        out.append("the Genie checks (backend, perf mode read back from the dialog) must run and pass")
    if len(doc["cases"]) < 20 or short:
        out.append(f"the Genie grid must run whole, each case generating its budget (short: {short})")
    if len(cpu) != len(doc["cases"]) or not all("HTP simulator" in k["message"] for k in cpu):
        out.append("every Genie case must show its decode CPU, labelled as the HTP simulator's")
    return out


def main(path: str) -> int:
    with open(path, encoding="utf-8") as handle:
        found = problems(json.load(handle))
    for problem in found:
        print(f"ci: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
