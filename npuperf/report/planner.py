"""The budget planner: how many new tokens fit the latency budget, per prompt length.

From the measured grid, per prompt:

    latency(n) ~= TTFT(prompt) + (n - 1) x TPOT(prompt)

TTFT(prompt) is measured (the median over the prompt's cases: it does not depend on the token
budget); TPOT(prompt) is the least-squares slope, through the origin, of each case's median
latency less that TTFT against its n - 1 further tokens (so it carries the detokenize and
per-request costs the way the app sees them). The largest budget within a limit is
1 + floor((limit - TTFT) / TPOT), 0 when the TTFT alone is over it (``stats.tokens_within``).
The fit's error (RMS and worst residual of the measured medians) says how far to trust it: a
TPOT that grows with the context shows as residuals growing with n. One case is its own fit.

Built from plain points so that the terminal (from the suite's records) and the HTML page and
the markdown summary (from the results JSON) plan with the same arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from npuperf.judge.stats import median, tokens_within
from npuperf.models.floor import Floor


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
    ttft_ms: float
    tpot_ms: float | None
    cases: int
    largest_measured: int
    # root-mean-square and worst residual of the measured medians (None: one case, its own fit)
    rms_ms: float | None
    worst_ms: float | None
    worst_pct: float | None
    fits_target: int
    fits_breaker: int
    # the most new tokens the decode floor allows within the target (None: no floor known)
    floor_max: int | None = None
    # what the fit alone said, when the floor or the context allows fewer (the fit is linear; the
    # KV cache is not), and which of them capped it
    fit_said: int | None = None
    capped_by: str = ""

    @property
    def fitted(self) -> bool:
        return self.rms_ms is not None

    @property
    def extrapolated(self) -> bool:
        return self.fits_target > self.largest_measured

    def formula(self) -> str:
        per = "-" if self.tpot_ms is None else f"{self.tpot_ms:.3f}"
        return f"{self.ttft_ms:.2f} ms + (n-1) x {per} ms"


def plan_prompt(
    points: Sequence[Point],
    target_ms: float,
    breaker_ms: float,
    floor: Floor | None = None,
    context: int | None = None,
) -> Plan:
    """The plan for the points of one prompt."""
    first = points[0]
    ttft = median([p.ttft_ms for p in points])
    steps = [(p.tokens - 1, p.latency_ms - ttft) for p in points if p.tokens > 1]
    sxx = sum(x * x for x, _ in steps)
    tpot = sum(x * y for x, y in steps) / sxx if sxx > 0 else None
    if tpot is not None and tpot <= 0:
        tpot = None  # decode too fast to tell from the noise: one token is all it can promise
    residuals = [(p.latency_ms - (ttft + (p.tokens - 1) * (tpot or 0.0)), p.latency_ms) for p in points]
    worst = max(residuals, key=lambda r: abs(r[0]))
    fitted = len(points) > 1
    plan = Plan(
        prompt=first.prompt,
        prompt_tokens=first.prompt_tokens,
        prompt_text=first.prompt_text,
        ttft_ms=ttft,
        tpot_ms=tpot,
        cases=len(points),
        largest_measured=round(max(p.tokens for p in points)),
        rms_ms=math.sqrt(sum(r * r for r, _ in residuals) / len(residuals)) if fitted else None,
        worst_ms=worst[0] if fitted else None,
        worst_pct=100.0 * worst[0] / worst[1] if fitted and worst[1] else None,
        **_capped(
            tokens_within(target_ms, ttft, tpot),
            tokens_within(breaker_ms, ttft, tpot),
            floor,
            target_ms,
            breaker_ms,
            first.prompt_tokens,
        ),
    )
    return _within_context(plan, context)


def _within_context(plan: Plan, context: int | None) -> Plan:
    """No more new tokens than the model's context holds after the prompt."""
    if context is None:
        return plan
    room = max(context - plan.prompt_tokens, 0)
    if plan.fits_target <= room and plan.fits_breaker <= room:
        return plan
    said = plan.fit_said if plan.fit_said is not None else plan.fits_target
    return replace(
        plan,
        fits_target=min(plan.fits_target, room),
        fits_breaker=min(plan.fits_breaker, room),
        fit_said=said if said > room else plan.fit_said,
        capped_by=f"the {context}-token context" if said > room else plan.capped_by,
    )


def _capped(
    target: int, breaker: int, floor: Floor | None, target_ms: float, breaker_ms: float, prompt_tokens: int
) -> dict[str, Any]:
    """The fit's answers, no higher than the floor's: a straight line through the measured cases
    cannot see the KV cache growing with every token, the floor does."""
    if floor is None:
        return {"fits_target": target, "fits_breaker": breaker, "floor_max": None, "fit_said": None, "capped_by": ""}
    at_most = floor.max_tokens(target_ms, prompt_tokens)
    return {
        "fits_target": min(target, at_most),
        "fits_breaker": min(breaker, floor.max_tokens(breaker_ms, prompt_tokens)),
        "floor_max": at_most,
        "fit_said": target if target > at_most else None,
        "capped_by": "the decode floor" if target > at_most else "",
    }


def plan(
    points: Iterable[Point],
    target_ms: float,
    breaker_ms: float,
    floor: Floor | None = None,
    context: int | None = None,
) -> list[Plan]:
    """One plan per prompt, in the order the prompts were first measured."""
    by_prompt: dict[str, list[Point]] = {}
    for p in points:
        by_prompt.setdefault(p.prompt, []).append(p)
    return [plan_prompt(ps, target_ms, breaker_ms, floor, context) for ps in by_prompt.values()]


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


def floor_of(session: Mapping[str, Any]) -> Floor | None:
    """The run's decode floor, from the results JSON's session (None: not computed)."""
    described = session.get("floor")
    return None if not described else Floor.from_dict(described)


def cold_overhead_ms(session: Mapping[str, Any]) -> float | None:
    """How much longer the first call after loading took than a warm call of the same request."""
    cold, warm = session.get("cold"), session.get("warm_latency_ms")
    if not cold or warm is None:
        return None
    return float(cold["latency_ms"]) - float(warm)
