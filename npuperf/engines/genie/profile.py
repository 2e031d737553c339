"""Genie's profile JSON (``GetProfile()``, ``GenieProfile_getJsonData``): the last query's figures,
and a Generation placed on the client timeline from them. Shared by both backends.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from npuperf.engines.base import EngineError, Generation, phases_of
from npuperf.engines.genie.config import dig

CLOCK = "latency: client perf_counter_ns; TTFT and TPOT: Genie GetProfile() (device clock)"
_UNITS_US = {"us": 1.0, "usec": 1.0, "microsec": 1.0, "µs": 1.0, "ms": 1000.0, "millisec": 1000.0, "s": 1e6, "sec": 1e6}


@dataclass(frozen=True)
class QueryProfile:
    """The figures Genie's profiler reported for the last query (device clock)."""

    ttft_us: float
    generation_us: float
    prompt_tokens: int
    generated_tokens: int
    prompt_tps: float | None
    generation_tps: float | None

    @property
    def ttft_ms(self) -> float:
        return self.ttft_us / 1000

    @property
    def tpot_ms(self) -> float | None:
        """Decode time over the tokens after the first (FIELD.md's TPOT)."""
        return None if self.generated_tokens < 2 else self.generation_us / 1000 / (self.generated_tokens - 1)


def _value_us(event: Mapping[str, Any], key: str) -> float:
    item = event.get(key)
    if not isinstance(item, dict) or not isinstance(item.get("value"), (int, float)):
        raise EngineError(f"Genie profile: {key!r} is missing or not a number in the last query event")
    unit = str(item.get("unit", "us")).lower()
    if unit not in _UNITS_US:
        raise EngineError(f"Genie profile: {key!r} has unit {unit!r}; expected one of {', '.join(_UNITS_US)}")
    return float(item["value"]) * _UNITS_US[unit]


def _number(event: Mapping[str, Any], key: str) -> float | None:
    item = event.get(key)
    value = item.get("value") if isinstance(item, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def init_time_ms(text: str) -> float | None:
    """Genie's own ``GenieDialog_create`` init time (device clock), if the profile has it."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return None
    components = dig(doc, "components")
    events = [
        e
        for c in (components if isinstance(components, list) else [])
        if isinstance(c, dict)
        for e in c.get("events") or []
        if isinstance(e, dict) and e.get("type") == "GenieDialog_create"
    ]
    if not events:
        return None
    try:
        return _value_us(events[-1], "init-time") / 1000
    except EngineError:
        return None


def parse_profile(text: str) -> QueryProfile:
    """The last ``GenieDialog_query`` event of ``GetProfile()``'s JSON."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EngineError(f"Genie profile is not JSON ({exc}): {text[:200]!r}") from exc
    components = dig(doc, "components")
    if not isinstance(components, list) or not components:
        raise EngineError("Genie profile has no 'components'; was the dialog created with a profiler bound?")
    events = [e for c in components if isinstance(c, dict) for e in c.get("events") or [] if isinstance(e, dict)]
    queries = [e for e in events if e.get("type") == "GenieDialog_query"]
    if not queries:
        raise EngineError(f"Genie profile has no GenieDialog_query event (events: {[e.get('type') for e in events]})")
    last = queries[-1]
    prompt, generated = _number(last, "num-prompt-tokens"), _number(last, "num-generated-tokens")
    if prompt is None or generated is None:
        raise EngineError("Genie profile: num-prompt-tokens / num-generated-tokens missing in the last query event")
    ttft_us = _value_us(last, "time-to-first-token")
    if generated == 0 and ttft_us > 0:
        # A query of one token reports num-generated-tokens 0 (its token came from the prefill;
        # no decode step ran): measured on Genie 1.21.0, tests/test_genie_real.py. It made one.
        generated = 1
    return QueryProfile(
        ttft_us=ttft_us,
        generation_us=_value_us(last, "token-generation-time"),
        prompt_tokens=int(prompt),
        generated_tokens=int(generated),
        prompt_tps=_number(last, "prompt-processing-rate"),
        generation_tps=_number(last, "token-generation-rate"),
    )


def profile_generation(
    profile: QueryProfile,
    prompt_tokens: int,
    span: tuple[int, int, int],
    requested: int,
    clock: str,
    text: str,
    device: dict[str, float],
) -> Generation:
    """A Generation whose tokens are placed on the client timeline from Genie's profile
    (TTFT, then the decode time spread evenly), as the AppBuilder backend must.

    ``span`` is (submit, query started, query returned) on the client clock. Phases: setup
    (before the query: SetParams), prefill and decode (the profile's, device clock), finish
    (the rest of the client's wall time around the query: the polled callback, returning).
    """
    count = profile.generated_tokens
    if count < 1:
        raise EngineError("Genie reported 0 generated tokens for the query")
    submit, queried, end = span
    first = queried + int(profile.ttft_us * 1000)
    step = 0.0 if count < 2 else profile.generation_us * 1000 / (count - 1)
    tokens = tuple(min(first + int(i * step), end) for i in range(count))
    return Generation(
        prompt_tokens=prompt_tokens,
        requested_new_tokens=requested,
        submit_ns=submit,
        token_ns=tokens,
        stop_reason="eos" if count < requested else "budget",
        clock=clock,
        device={**device, **profile_figures(profile)},
        end_ns=end,
        text=text,
        phases=phases_of(submit, [("setup", queried), ("prefill", tokens[0]), ("decode", tokens[-1]), ("finish", end)]),
    )


def profile_figures(profile: QueryProfile) -> dict[str, float]:
    """Genie's own figures of a query (device clock), for Generation.device."""
    out = {
        "device_ttft_ms": profile.ttft_ms,
        "device_generation_ms": profile.generation_us / 1000,
        "device_prompt_tokens": float(profile.prompt_tokens),
        "device_generated_tokens": float(profile.generated_tokens),
    }
    if profile.prompt_tps is not None:
        out["device_prompt_tps"] = profile.prompt_tps
    if profile.generation_tps is not None:
        out["device_generation_tps"] = profile.generation_tps
    return out
