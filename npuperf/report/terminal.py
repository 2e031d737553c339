"""The terminal summary table, built as lines; the plugin writes them."""

from __future__ import annotations

from collections.abc import Sequence

from npuperf.report import CaseRecord, row_values

COLUMNS = (
    ("case", "case"),
    ("tokens", "tokens"),
    ("median", "median ms"),
    ("p90", "p90 ms"),
    ("max", "max ms"),
    ("ttft", "TTFT ms"),
    ("tpot", "TPOT ms"),
    ("decode", "decode tok/s"),
    ("prefill", "prefill tok/s"),
    ("budget", "budget ms"),
    ("delta", "vs baseline"),
    ("verdict", "verdict"),
)


def case_table(records: Sequence[CaseRecord]) -> list[str]:
    """One header line, one line per case, columns aligned.

    Numeric columns are right-aligned so magnitudes line up.
    """
    rows = []
    for rec in records:
        values = row_values(rec)
        lo, hi = rec.result.tokens_generated
        values["case"] = rec.case_id
        values["tokens"] = f"{lo}" if lo == hi else f"{lo}-{hi}"
        rows.append([values[key] for key, _ in COLUMNS])
    header = [title for _, title in COLUMNS]
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) if rows else len(header[i]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        parts = [cells[0].ljust(widths[0])]
        parts += [c.rjust(w) for c, w in zip(cells[1:-1], widths[1:-1], strict=False)]
        parts.append(cells[-1])
        return "  ".join(parts)

    return [line(header), *(line(r) for r in rows)]
