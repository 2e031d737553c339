"""Proves the attack suite kept its promise: every hostile input it tried was handled as promised,
in at least ten classes, and every request it sent to a server was answered (none lost).

    python scripts/ci/attack_tally.py TALLY.json   # written by `pytest tests` with NPUPERF_ATTACK_TALLY set
"""

from __future__ import annotations

import json
import sys


def main(path: str) -> int:
    with open(path, encoding="utf-8") as handle:
        tally = json.load(handle)
    tried = tally["inputs tried"]
    print(
        f"attack suite: {sum(tried.values())} inputs in {len(tried)} classes, "
        f"{tally['requests sent']} requests, {tally['requests lost']} lost"
    )
    problems = []
    if tally["requests sent"] <= 0 or tally["requests lost"] != 0:
        problems.append(f"requests sent {tally['requests sent']}, lost {tally['requests lost']}")
    if len(tried) < 10:
        problems.append(f"only {len(tried)} classes tried: {sorted(tried)}")
    if tally["handled as promised"] != tried:
        short = {k: (v, tally["handled as promised"].get(k, 0)) for k, v in tried.items()}
        problems.append(f"not every input handled as promised (tried, handled): {short}")
    for problem in problems:
        print(f"ci: attack suite: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
