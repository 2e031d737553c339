"""The budget planner: how many new tokens fit the latency budget, per prompt length.

From the measured grid, per prompt, a least-squares line through the cases' median
latencies against the tokens they generated:

    latency(n) ~= fixed(prompt) + n x per_token(prompt)

``fixed`` is what a request costs before its tokens add up (tokenize, set-up, prefill; the
TTFT less one token), ``per_token`` the decode cost (the TPOT). The largest budget that fits a
limit is floor((limit - fixed) / per_token). The fit's error (RMS and worst residual of the
measured medians) says how far to trust it; a prompt measured at one budget only falls back
to that case's TTFT and TPOT (``tokens_within``), and says so.

Built from plain points so that the terminal (from the suite's records) and the HTML page and
the markdown summary (from the results JSON) plan with the same arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from npuperf.stats import tokens_within


@dataclass(frozen=True)
class Point:
    """One measured case: its prompt, the tokens it generated (median) and its median figures."""

    case_id: str
    prompt: str
    prompt_tokens: int
    tokens: float
    latency_ms: float
    ttft_ms: float
    tpot_ms: float | None
    prompt_text: str = ""


@dataclass(frozen=True)
class Plan:
    """The planner's answer for one prompt."""

    prompt: str
    prompt_tokens: int
    prompt_text: str
    fixed_ms: float
    per_token_ms: float | None
    cases: int
    largest_measured: int
    # root-mean-square and worst residual of the measured medians (None: one case, no fit)
    rms_ms: float | None
    worst_ms: float | None
    worst_pct: float | None
    fits_target: int
    fits_breaker: int

    @property
    def fitted(self) -> bool:
        return self.rms_ms is not None

    @property
    def extrapolated(self) -> bool:
        return self.fits_target > self.largest_measured

    def formula(self) -> str:
        per = "-" if self.per_token_ms is None else f"{self.per_token_ms:.3f}"
        return f"{self.fixed_ms:.2f} ms + n x {per} ms"


def largest_within(limit_ms: float, fixed_ms: float, per_token_ms: float | None) -> int:
    """The largest n with fixed + n x per_token <= limit (0 when the fixed cost alone is over).

    >>> largest_within(500, 100, 12.5)
    32
    """
    if fixed_ms > limit_ms:
        return 0
    if not per_token_ms or per_token_ms <= 0:
        return 1  # no per-token cost measured: one token, as tokens_within says
    return math.floor((limit_ms - fixed_ms) / per_token_ms + 1e-9)


def _line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float] | None:
    """Least-squares intercept and slope; None without two distinct x."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx <= 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return my - slope * mx, slope


def plan_prompt(points: Sequence[Point], target_ms: float, breaker_ms: float) -> Plan:
    """The plan for the points of one prompt."""
    first = max(points, key=lambda p: p.tokens)
    measured = round(max(p.tokens for p in points))
    line = _line([p.tokens for p in points], [p.latency_ms for p in points])
    if line is None or line[1] <= 0:  # one budget (or decode too fast to show): the case's own TTFT and TPOT
        tpot = first.tpot_ms
        return Plan(
            prompt=first.prompt,
            prompt_tokens=first.prompt_tokens,
            prompt_text=first.prompt_text,
            fixed_ms=first.ttft_ms - (tpot or 0.0),
            per_token_ms=tpot,
            cases=len(points),
            largest_measured=measured,
            rms_ms=None,
            worst_ms=None,
            worst_pct=None,
            fits_target=tokens_within(target_ms, first.ttft_ms, tpot),
            fits_breaker=tokens_within(breaker_ms, first.ttft_ms, tpot),
        )
    fixed, per = line
    residuals = [(p.latency_ms - (fixed + per * p.tokens), p.latency_ms) for p in points]
    worst = max(residuals, key=lambda r: abs(r[0]))
    return Plan(
        prompt=first.prompt,
        prompt_tokens=first.prompt_tokens,
        prompt_text=first.prompt_text,
        fixed_ms=fixed,
        per_token_ms=per,
        cases=len(points),
        largest_measured=measured,
        rms_ms=math.sqrt(sum(r * r for r, _ in residuals) / len(residuals)),
        worst_ms=worst[0],
        worst_pct=100.0 * worst[0] / worst[1] if worst[1] else None,
        fits_target=largest_within(target_ms, fixed, per),
        fits_breaker=largest_within(breaker_ms, fixed, per),
    )


def plan(points: Iterable[Point], target_ms: float, breaker_ms: float) -> list[Plan]:
    """One plan per prompt, in the order the prompts were first measured."""
    by_prompt: dict[str, list[Point]] = {}
    for p in points:
        by_prompt.setdefault(p.prompt, []).append(p)
    return [plan_prompt(ps, target_ms, breaker_ms) for ps in by_prompt.values()]


def points_from_results(cases: Sequence[Mapping[str, Any]]) -> list[Point]:
    """Points from the results JSON's cases."""
    out = []
    for c in cases:
        summary = c["summary"]
        lo, hi = c["tokens_generated"]
        tpot = summary.get("tpot_ms")
        out.append(
            Point(
                case_id=c["id"],
                prompt=c["prompt"],
                prompt_tokens=c["prompt_tokens"],
                tokens=(lo + hi) / 2,
                latency_ms=summary["latency_ms"]["median"],
                ttft_ms=summary["ttft_ms"]["median"],
                tpot_ms=None if tpot is None else tpot["median"],
                prompt_text=c.get("prompt_text", ""),
            )
        )
    return out


def cold_overhead_ms(session: Mapping[str, Any]) -> float | None:
    """How much longer the first call after loading took than a warm call of the same request."""
    cold, warm = session.get("cold"), session.get("warm_latency_ms")
    if not cold or warm is None:
        return None
    return float(cold["latency_ms"]) - float(warm)
