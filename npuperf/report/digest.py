"""The morning answer, from a results JSON document: the banner and the cases, worst first.

Everything here reads the results JSON (``reports/perf-results.json``, or the same document
built in memory at the end of a run), so the HTML report, ``npuperf summary`` and a night's
page over several devices say the same thing from the same figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

BUDGET_CHECK = "latency budget"
BREAKER_CHECK = "circuit breaker"


class DigestError(ValueError):
    """A document that is not an npuperf results JSON."""


@dataclass(frozen=True)
class CaseRow:
    """One case as the banner's table shows it."""

    id: str
    prompt: str
    prompt_tokens: int
    new_tokens: int
    median_ms: float
    p90_ms: float
    ttft_ms: float
    tpot_ms: float | None
    budget_ms: float
    ratio: float | None  # median latency / baseline median (None: no baseline)
    outcome: str
    regressed: bool
    over_budget: bool
    trips_breaker: bool
    failed_checks: tuple[str, ...]
    floor_ms: float | None = None  # the decode floor per token (npuperf.floor)
    efficiency: float | None = None  # floor / TPOT
    infeasible: str = ""  # the floor's arithmetic when the budget is below it

    @property
    def delta(self) -> str:
        return "no baseline" if self.ratio is None else f"{(self.ratio - 1) * 100:+.1f}%"

    @property
    def status(self) -> str:
        """The one word the tables show: what is wrong first."""
        if self.regressed:
            return "REGRESSED"
        if self.trips_breaker:
            return "TRIPS BREAKER"
        if self.over_budget:
            return "OVER BUDGET"
        if self.failed_checks:
            return "FAILED"
        return self.outcome.upper() if self.outcome != "ok" else "ok"

    def rank(self) -> tuple[int, float]:
        """Sort key, worst first: regressions (largest first), breaker, budget, other failures, not
        judged, inconclusive, advisory, the rest."""
        failed = bool(self.failed_checks)
        flags = (
            self.regressed,
            self.trips_breaker,
            self.over_budget,
            failed,
            self.outcome == "not judged",
            self.outcome == "inconclusive",
            self.outcome == "advisory",
            True,
        )
        order = flags.index(True)
        return order, -(
            self.ratio or 0.0
        ) if self.regressed or self.outcome == "advisory" else -self.median_ms / self.budget_ms


@dataclass(frozen=True)
class Banner:
    """The counts, the worst case and the run's conditions."""

    total: int
    passed: int
    regressed: int
    inconclusive: int
    over_budget: int
    trips_breaker: int
    no_baseline: int
    other_failures: int
    worst: str
    headline: str
    level: str  # "bad", "warn" or "good": the banner's colour
    conditions: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    changed: tuple[str, ...] = ()
    grid: str = ""
    # the backend's own checks that failed (load budget, NPU placement, perf mode, service...)
    backend_failures: tuple[str, ...] = ()
    # cases whose budget is below the decode floor: "<case>: <arithmetic>"
    infeasible: tuple[str, ...] = ()
    not_judged: int = 0  # measured on a machine that stayed busy, where the load could explain them
    advisory: int = 0  # above their threshold against another host's baseline: shown, not failed
    against: str = ""  # what the cases were compared with, when it is not this host's baseline

    def counts(self) -> list[tuple[str, int, str]]:
        """(word, count, how bad a non-zero count is: "bad", "warn" or ""); the states a run has
        only now and then (not judged, advisory) are listed when they occur."""
        return [
            ("passed", self.passed, ""),
            ("regressed", self.regressed, "bad"),
            *([("not judged", self.not_judged, "warn")] if self.not_judged else []),
            ("inconclusive", self.inconclusive, "warn"),
            *([("advisory", self.advisory, "warn")] if self.advisory else []),
            ("over budget", self.over_budget, "bad"),
            ("would trip the breaker", self.trips_breaker, "bad"),
        ]


def _failed(checks: Sequence[Mapping[str, Any]], name: str) -> bool:
    return any(c["name"] == name and c["outcome"] == "failed" for c in checks)


def case_row(c: Mapping[str, Any]) -> CaseRow:
    checks = c.get("checks", [])
    summary = c["summary"]
    baseline = c.get("baseline") or {}
    latency_base = (baseline.get("metrics") or {}).get("latency_ms")
    regressed = any(ch["name"].endswith("vs baseline") and ch["outcome"] == "failed" for ch in checks)
    known = {BUDGET_CHECK, BREAKER_CHECK}
    others = tuple(
        ch["name"]
        for ch in checks
        if ch["outcome"] == "failed" and ch["name"] not in known and not ch["name"].endswith("vs baseline")
    )
    tpot = summary.get("tpot_ms")
    found = c.get("floor") or {}
    return CaseRow(
        id=c["id"],
        prompt=c["prompt"],
        prompt_tokens=c["prompt_tokens"],
        new_tokens=c["new_tokens"],
        median_ms=summary["latency_ms"]["median"],
        p90_ms=summary["latency_ms"]["p90"],
        ttft_ms=summary["ttft_ms"]["median"],
        tpot_ms=None if tpot is None else tpot["median"],
        budget_ms=c["budget_ms"],
        ratio=None if latency_base is None else latency_base["ratio"],
        outcome=c["outcome"],
        regressed=regressed,
        over_budget=_failed(checks, BUDGET_CHECK),
        trips_breaker=_failed(checks, BREAKER_CHECK),
        failed_checks=others,
        floor_ms=found.get("decode_ms_per_token"),
        efficiency=found.get("efficiency"),
        infeasible="" if found.get("feasible", True) else str(found.get("arithmetic", "")),
    )


def rows(doc: Mapping[str, Any]) -> list[CaseRow]:
    """Every case, worst first."""
    return sorted((case_row(c) for c in cases_of(doc)), key=CaseRow.rank)


def cases_of(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    schema = doc.get("schema", "")
    if not isinstance(schema, str) or not schema.startswith("npuperf.results/"):
        raise DigestError(f"schema {schema!r} is not an npuperf results document (npuperf.results/1)")
    cases = doc.get("cases")
    if not isinstance(cases, list):
        raise DigestError("it has no list of cases")
    return cases


def _worst(worst_first: Sequence[CaseRow]) -> str:
    if not worst_first:
        return "no case was measured"
    w = worst_first[0]
    share = f"{w.median_ms / w.budget_ms:.0%} of its {w.budget_ms:g} ms budget"
    if w.regressed:
        return f"worst: {w.id} {w.median_ms:.2f} ms median, {w.delta} vs baseline ({share})"
    versus = "no baseline" if w.ratio is None else f"{w.delta} vs baseline"
    return f"slowest against its budget: {w.id} {w.median_ms:.2f} ms median ({share}, {versus})"


def conditions(doc: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    env: Mapping[str, str] = doc.get("environment", {})
    session = doc.get("session", {})
    out = [
        ("engine", f"{env.get('Engine', '?')} ({env.get('Provider', '?')})"),
        ("device", env.get("Device", "?")),
        ("model", f"{env.get('Model', '?')} [{env.get('Model sha256', '?')[:12]}]"),
    ]
    if session.get("load_s") is not None:
        out.append(("load", f"{session['load_s']:.2f} s (budget {doc['settings'].get('load_budget_s', 0):g} s)"))
    measured = env.get("Measured in")
    if measured:
        out.append(("measured in", measured))
    compared = _against(session)
    if compared:
        out.append(("compared with", compared))
    out += [(k.removeprefix("Condition: "), v) for k, v in env.items() if k.startswith("Condition: ")]
    out += [(k.lower(), v) for k, v in env.items() if k in ("Runtime versions", "Commit", "Stall injection")]
    return tuple(out)


def _against(session: Mapping[str, Any]) -> str:
    """What the cases were compared with, when it was not this host's own baseline."""
    measured = session.get("measured") or {}
    base = session.get("baseline") or {}
    if measured.get("ab"):
        return str(measured.get("reference") or "an A/B reference")
    if base.get("other_host"):
        mode = "advisory" if base.get("cross_host", "advisory") == "advisory" else "enforced (--cross-host strict)"
        return f"the baseline of another host ({base['other_host']}): {mode}"
    return ""


def _headline(counts: Mapping[str, int], grid: str, backend: int, total: int, against: str) -> tuple[str, str]:
    """(level, headline): FAILED first, then NOT JUDGED, then PASSED with what is worth a look."""
    failures = [f"{counts[word]} {word}" for word in ("regressed", "over budget") if counts[word]] + [
        f"{counts['breaker']} would trip the breaker"
    ] * bool(counts["breaker"])
    failures += [f"{counts['other']} failed other checks"] * bool(counts["other"])
    failures += ["the grid regressed"] * (grid == "failed") + [f"{backend} backend check(s) failed"] * bool(backend)
    unjudged = [f"{counts['not judged']} case(s)"] * bool(counts["not judged"]) + ["the grid"] * (grid == "not judged")
    if failures:
        tail = f"; not judged: {' and '.join(unjudged)}" if unjudged else ""
        return "bad", "FAILED: " + ", ".join(failures) + tail
    if unjudged:
        return "warn", (
            f"NOT JUDGED: {' and '.join(unjudged)} measured while the machine stayed busy, where the load could "
            "explain the figures; re-run on a quiet machine"
        )
    notes = [f"{counts[w]} {w}" for w in ("inconclusive",) if counts[w]]
    notes += [f"{counts['no baseline']} without a baseline"] * bool(counts["no baseline"])
    if counts["advisory"]:
        notes.append(f"{counts['advisory']} above their threshold against {against or 'another host'} (advisory)")
    if notes:
        return "warn", "PASSED with " + " and ".join(notes)
    where = f" against {against}" if against else ""
    return "good", f"PASSED: all {total} cases within budget, none regressed{where}"


def banner(doc: Mapping[str, Any]) -> Banner:
    all_rows = rows(doc)
    regressed = sum(r.regressed for r in all_rows)
    over = sum(r.over_budget for r in all_rows)
    breaker = sum(r.trips_breaker for r in all_rows)
    other = sum(bool(r.failed_checks) for r in all_rows)
    inconclusive = sum(r.outcome == "inconclusive" for r in all_rows)
    passed = sum(r.outcome in ("ok", "no baseline") for r in all_rows)
    no_baseline = sum(r.ratio is None for r in all_rows)
    session = doc.get("session", {})
    grid = session.get("grid") or {}
    base = session.get("baseline") or {}
    backend = tuple(
        f"{c['name']}: {c['message']}" for c in session.get("backend_checks") or [] if c.get("outcome") == "failed"
    )
    counts = {
        "regressed": regressed,
        "over budget": over,
        "breaker": breaker,
        "other": other,
        "not judged": sum(r.outcome == "not judged" for r in all_rows),
        "inconclusive": inconclusive,
        "advisory": sum(r.outcome == "advisory" for r in all_rows),
        "no baseline": no_baseline,
    }
    against = _against(session)
    level, headline = _headline(counts, str(grid.get("outcome", "")), len(backend), len(all_rows), against)
    if session.get("outcome") == "interrupted":
        level = "bad" if level == "bad" else "warn"
        headline = f"INTERRUPTED after {len(all_rows)} case(s), a partial grid; " + headline
    return Banner(
        total=len(all_rows),
        passed=passed,
        regressed=regressed,
        inconclusive=inconclusive,
        over_budget=over,
        trips_breaker=breaker,
        no_baseline=no_baseline,
        other_failures=other,
        worst=_worst(all_rows),
        headline=headline,
        level=level,
        conditions=conditions(doc),
        changed=tuple(base.get("changed") or ()),
        grid=str(grid.get("message", "")),
        backend_failures=backend,
        infeasible=tuple(f"{r.id}: {r.infeasible}" for r in all_rows if r.infeasible),
        not_judged=counts["not judged"],
        advisory=counts["advisory"],
        against=against,
    )


def side_by_side(docs: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[CaseRow | None]]]:
    """Each case id with its row on every device (None where a device did not run it), worst first
    (a case is as bad as its worst device)."""
    per = [{r.id: r for r in rows(doc)} for doc in docs]
    rank: dict[str, tuple[int, float]] = {}
    for device in per:
        for cid, r in device.items():
            rank[cid] = min(rank.get(cid, r.rank()), r.rank())
    return [(cid, [device.get(cid) for device in per]) for cid in sorted(rank, key=lambda c: rank[c])]
