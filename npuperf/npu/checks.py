"""Pure decisions about the NPU: did the model run there, in burst mode, from a warm cache?

Each function takes what an engine or a QNN probe reported and returns a verdict Check
with a message that names the figures (and, for a fallback, the nodes). No I/O, no
pytest: plugin.py presents and enforces them.

These are the four suspected causes of the team's 7419 ms (FIELD.md): inference
silently on the CPU, performance mode not BURST, first-inference compile time, and too
many tokens (the latency grid and its "token budgets that fit" lines cover the last).
"""

from __future__ import annotations

from pathlib import Path

from npuperf.engines.genie.config import GenieConfig
from npuperf.judge.verdict import Check, Outcome, passed_if
from npuperf.npu.qnn import CompileCache, Probe


def _short(path: str) -> str:
    """``models/qnn-block/model.onnx`` -> ``qnn-block/model.onnx``: enough to tell models apart."""
    return "/".join(Path(path).parts[-2:])


def qnn_placement(probe: Probe, listed: int = 12) -> Check:
    """Fails when any compute node runs outside QNN; boundary QuantizeLinear/DequantizeLinear may."""
    p = probe.placement
    if not p.nodes:
        return passed_if("runs on NPU", False, 0.0, 1.0, f"{_short(probe.model)}: ORT reported no node assignment")
    shares = (
        f"{len(p.on_qnn)} of {len(p.nodes)} nodes ({p.node_share:.1%}) and {p.time_share:.1%} of kernel time "
        f"on {'the HTP simulator' if probe.simulated else 'the NPU'} (QNNExecutionProvider)"
    )
    fallback = p.fallback
    if not fallback:
        return passed_if(
            "runs on NPU", True, p.node_share, 1.0, f"{_short(probe.model)}: {shares}; no compute on the CPU"
        )
    names = ", ".join(f"{n.name} ({n.op_type} on {n.provider})" for n in fallback[:listed])
    more = f" and {len(fallback) - listed} more" if len(fallback) > listed else ""
    return passed_if(
        "runs on NPU",
        False,
        p.node_share,
        1.0,
        f"{_short(probe.model)}: {len(fallback)} compute node(s) fell back to the CPU: {names}{more}; {shares}. "
        "Replace or re-export those ops (docs/npu.md, 'runs on NPU')",
    )


def qnn_perf_mode(probe: Probe, required: str) -> Check:
    """The HTP performance mode the EP applied (from its own log) must be ``required``."""
    applied = probe.applied_perf_mode
    configured = probe.provider_options.get("htp_performance_mode", "default (not set)")
    if applied is None:
        return Check(
            name="perf mode",
            outcome=Outcome.INCONCLUSIVE,
            value=0.0,
            limit=0.0,
            message=(
                f"{_short(probe.model)}: the QNN EP's log did not state the HTP performance mode it applied "
                f"(configured: {configured}); cannot confirm {required}"
            ),
        )
    ok = applied == required
    return _perf_mode(
        ok,
        f"{_short(probe.model)}: HTP performance mode applied by the EP: {applied} (configured: {configured}; "
        f"required: {required})",
    )


def qnn_compile_cache(cache: CompileCache, min_speedup: float = 1.0) -> Check:
    """The context model must be written, then used (an EPContext node on QNN), and load faster."""
    where = "HTP simulator" if cache.cold.simulated else "device"
    timing = (
        f"cold compile {cache.cold.session_s * 1000:.0f} ms, writing the context model "
        f"{cache.generate.session_s * 1000:.0f} ms, load from cache {cache.cached.session_s * 1000:.0f} ms ({where})"
    )
    if cache.generate.context_written is None:
        return passed_if(
            "compile cache", False, 0.0, min_speedup, f"ep.context_enable wrote no context model; {timing}"
        )
    if not cache.cached.uses_context:
        ops = sorted({n.op_type for n in cache.cached.placement.on_qnn})
        return passed_if(
            "compile cache",
            False,
            0.0,
            min_speedup,
            f"{_short(cache.context_model)} loaded without a precompiled EPContext node on QNN "
            f"(QNN ran: {ops}); {timing}",
        )
    speedup = cache.speedup or 0.0
    ok = speedup > min_speedup
    return passed_if(
        "compile cache",
        ok,
        speedup,
        min_speedup,
        f"compile cache {'effective' if ok else 'NOT faster'}: {timing}; cached load is x{speedup:.1f} faster "
        f"({cache.context_bytes / 1e6:.2f} MB context at {cache.context_model})",
    )


def _perf_mode(ok: bool, message: str) -> Check:
    """The "perf mode" check: 1 when the required HTP performance mode is in force, else 0."""
    return passed_if("perf mode", ok, 1.0 if ok else 0.0, 1.0, message)


def genie_backend(config: GenieConfig, provider: str = "") -> Check:
    """A Genie dialog runs on the NPU when its engine backend is QnnHtp (Genie has no per-op fallback);
    ``provider`` says whether that HTP is the simulator (the C API backend on x86_64)."""
    ok = config.on_htp
    where = "the HTP simulator" if provider.endswith("-simulator") else "the Hexagon NPU"
    return passed_if(
        "runs on NPU",
        ok,
        1.0 if ok else 0.0,
        1.0,
        f"{config.path.name}: engine backend {config.backend_type!r} "
        f"({where if ok else 'NOT the NPU; expected QnnHtp'}), dialog {config.dialog_type}, "
        f"context {config.context_size if config.context_size is not None else 'unknown'}",
    )


def genie_perf_profile(config: GenieConfig, required: str, applied: str | None = None) -> Check:
    """The HTP performance mode Genie runs at: the backend extensions file's perf_profile, or the
    dialog's performance policy as Genie reports it back (GenieDialog_getPerformancePolicy, C API)."""
    if applied is not None:
        ok = applied == required
        return _perf_mode(
            ok,
            f"{config.path.name}: Genie performance policy {applied} as read back from the dialog "
            f"(required: {required}; extensions perf_profile {config.perf_profile or 'not set'})",
        )
    if config.extensions is None:
        return _perf_mode(
            False,
            f"{config.path.name}: no engine.backend.extensions file, so the HTP runs at its default "
            f"performance profile; required: {required}",
        )
    ok = config.perf_profile == required
    return _perf_mode(
        ok,
        f"{config.extensions.name}: perf_profile {config.perf_profile or 'not set'} (required: {required})",
    )
