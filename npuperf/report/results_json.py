"""The machine-readable results file (reports/perf-results.json): every sample and verdict."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from npuperf.engines.base import Generation
from npuperf.judge.verdict import Check
from npuperf.npu import qnn
from npuperf.report import CaseRecord

SCHEMA = "npuperf.results/1"


def _generation(gen: Generation) -> dict[str, Any]:
    return {
        "latency_ms": gen.latency_ms,
        "ttft_ms": gen.ttft_ms,
        "tpot_ms": gen.tpot_ms,
        "prompt_tokens": gen.prompt_tokens,
        "new_tokens": gen.new_tokens,
        "requested_new_tokens": gen.requested_new_tokens,
        "stop_reason": gen.stop_reason,
        "clock": gen.clock,
        "runtime_reported": dict(gen.device),
        "phases_ms": dict(gen.phases),
        "token_ms": [round(t, 3) for t in gen.token_ms],
    }


def check_entry(check: Check) -> dict[str, Any]:
    """A check as the results JSON holds it (per case and in the session's backend checks)."""
    return {
        "name": check.name,
        "outcome": check.outcome.value,
        "value": check.value,
        "limit": check.limit,
        "message": check.message,
    }


def case_entry(record: CaseRecord) -> dict[str, Any]:
    r = record.result
    return {
        "id": record.case_id,
        "label": r.case.label,
        "prompt": r.case.prompt.name,
        "prompt_tokens": r.case.prompt.tokens,
        "prompt_text": r.case.prompt.text if len(r.case.prompt.text) <= 80 else r.case.prompt.text[:79] + "\u2026",
        "new_tokens": r.case.new_tokens,
        "sampling": r.case.sampling,
        "tokens_generated": list(r.tokens_generated),
        "stopped_early": r.stopped_early,
        "over_budget": r.over_budget,
        "clock": r.generations[0].clock,
        "runtime_reported": r.device_medians(),
        "samples": {m: list(r.samples(m)) for m in ("latency_ms", "ttft_ms", "tpot_ms")},
        # the same samples per measuring process (the verdict's unit), and each generation's process
        "groups": {m: [list(g) for g in r.groups(m)] for m in ("latency_ms", "ttft_ms", "tpot_ms")},
        "processes": list(r.tags),
        "background_cores_by_process": {str(p): c for p, c in sorted(r.background.items())},
        # every token's time since its request was submitted (ms, to the microsecond), per repetition
        "token_ms": [[round(t, 3) for t in g.token_ms] for g in r.generations],
        # keys are sorted in this file: "order" keeps the engine's order of its phases
        "phases_ms": {
            "order": list(r.phases),
            "median": r.phases,
            "per_repetition": [dict(g.phases) for g in r.generations],
        },
        "itl_ms": None if r.itl is None else asdict(r.itl),
        "cpu_cores": {
            "call": r.cpu_cores,
            "decode": r.decode_cpu_cores,
            "per_repetition": [[u.cpu_cores, u.decode_cpu_cores] for u in r.usage],
        },
        "peak_rss_mb": r.peak_rss_mb,
        "summary": {
            "latency_ms": asdict(r.latency),
            "ttft_ms": asdict(r.ttft),
            "tpot_ms": None if r.tpot is None else asdict(r.tpot),
            "decode_tps": r.decode_tps,
            "prefill_tps": r.prefill_tps,
        },
        "budget_ms": record.budget_ms,
        "baseline": baseline_entry(record),
        "floor": None
        if record.floor_ms is None
        else {
            "decode_ms_per_token": record.floor_ms,
            "latency_ms": record.latency_floor_ms,
            "efficiency": record.efficiency,
            "feasible": not record.infeasible,
            "arithmetic": record.infeasible,
        },
        "background_cores": record.background_cores,
        "outcome": record.verdict.outcome.value,
        "checks": [check_entry(c) for c in record.verdict.checks],
    }


def baseline_entry(record: CaseRecord) -> dict[str, Any] | None:
    """The accepted baseline each metric was compared with (None: the case had none)."""
    compared = [r for r in record.verdict.regressions if r.baseline_median]
    if not compared:
        return None
    return {
        "recorded_at": record.baseline_recorded_at,
        "metrics": {
            r.metric: {
                "median": r.baseline_median,
                "ratio": r.ratio,
                "threshold": r.threshold,
                "outcome": r.outcome.value,
            }
            for r in compared
        },
    }


def document(
    *,
    environment: Mapping[str, str],
    settings: Mapping[str, Any],
    session: Mapping[str, Any],
    records: Sequence[CaseRecord],
    created: str,
) -> str:
    doc = {
        "schema": SCHEMA,
        "created": created,
        "environment": dict(environment),
        "settings": dict(settings),
        "session": dict(session),
        "cases": [case_entry(r) for r in records],
    }
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"


def generation_entry(gen: Generation) -> dict[str, Any]:
    return _generation(gen)


def qnn_entry(report: qnn.QnnReport) -> dict[str, Any]:
    """The QNN probes (cold, context write, cached load) as the results JSON holds them."""

    def probe(p: qnn.Probe) -> dict[str, Any]:
        return {
            "model": p.model,
            "simulated": p.simulated,
            "device_type": p.device_type,
            "clock": p.clock,
            "session_s": p.session_s,
            "run_ms": list(p.run_ms),
            "requested_perf_mode": p.requested_perf_mode,
            "applied_perf_mode": p.applied_perf_mode,
            "provider_options": dict(p.provider_options),
            "node_share": p.placement.node_share,
            "time_share": p.placement.time_share,
            "kernel_us": dict(p.placement.kernel_us),
            "fallback": [asdict(n) for n in p.placement.fallback],
            "uses_context": p.uses_context,
            "versions": dict(p.versions),
        }

    c = report.cache
    return {
        "model": report.model,
        "cold": probe(c.cold),
        "context_write": probe(c.generate),
        "cached": probe(c.cached),
        "context_model": c.context_model,
        "context_bytes": c.context_bytes,
        "speedup": c.speedup,
    }
