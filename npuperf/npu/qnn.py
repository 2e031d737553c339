"""ONNX Runtime with the onnxruntime-qnn plugin EP: where a model runs, in which HTP
performance mode, and what the compile cache saves.

Each probe runs in a fresh Python process (``python -m npuperf.npu.qnn probe ...``):
HTP settings can leak between sessions of one process, a cold compile is only cold in a
new process, and the EP's own log (stderr, verbose) is the evidence of the performance
mode it applied. The probe registers the EP as a plugin (never the string provider
list, which silently runs on the CPU), records node placement and per-node kernel time
from ORT profiling, and prints one JSON document.

On x86_64 the onnxruntime-qnn wheel's libQnnHtp runs the HTP in *simulation*: the probe
says so (``simulated``), from the EP device's hardware type, and its timings are
simulator timings.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from npuperf.engines.base import EngineError, EngineUnavailable, ModelError, installed_version
from npuperf.judge.stats import median
from npuperf.npu.htp import PERF_MODES

NAME = "qnn"
INSTALL = "pip install onnxruntime-qnn"
EP = "QNNExecutionProvider"
# Graph-boundary conversions: a QDQ model keeps its outer QuantizeLinear/DequantizeLinear
# on the CPU by design. Anything else on the CPU is compute that fell back.
IO_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
# The EP's verbose log lines that state the mode it set (or kept) on the HTP.
_MODE_LINES = (
    re.compile(r"Updating htp performance mode to: (\w+)"),
    re.compile(r"Requested htp performance mode is the same as last set \((\w+)\)"),
)
PROBE_TIMEOUT_S = 600.0


class ProbeError(EngineError):
    """A probe process failed; the message carries its exit status and log tail."""


@dataclass(frozen=True)
class NodePlacement:
    """One node of the model and the EP ORT assigned it to."""

    name: str
    op_type: str
    provider: str

    @property
    def is_io(self) -> bool:
        return self.op_type in IO_OPS


@dataclass(frozen=True)
class Placement:
    """Where the graph ran: node assignment and kernel time per provider.

    >>> cpu = "CPUExecutionProvider"
    >>> p = Placement(nodes=(NodePlacement("mm", "MatMul", EP), NodePlacement("q", "QuantizeLinear", cpu)),
    ...               kernel_us={EP: 990.0, cpu: 10.0})
    >>> p.node_share, p.time_share, p.fallback
    (0.5, 0.99, ())
    """

    nodes: tuple[NodePlacement, ...]
    kernel_us: Mapping[str, float]

    @property
    def on_qnn(self) -> tuple[NodePlacement, ...]:
        return tuple(n for n in self.nodes if n.provider == EP)

    @property
    def node_share(self) -> float:
        """Share of the model's nodes assigned to QNN."""
        return len(self.on_qnn) / len(self.nodes) if self.nodes else 0.0

    @property
    def time_share(self) -> float:
        """Share of measured kernel time spent in QNN partitions."""
        total = sum(self.kernel_us.values())
        return self.kernel_us.get(EP, 0.0) / total if total else 0.0

    @property
    def fallback(self) -> tuple[NodePlacement, ...]:
        """Compute nodes that run on another provider than QNN (boundary Q/DQ excepted)."""
        return tuple(n for n in self.nodes if n.provider != EP and not n.is_io)


@dataclass(frozen=True)
class Probe:
    """What one fresh process saw: session creation, runs, placement and the HTP mode."""

    model: str
    simulated: bool
    device_type: str
    requested_perf_mode: str
    applied_perf_mode: str | None
    provider_options: Mapping[str, str]
    session_s: float
    run_ms: tuple[float, ...]
    placement: Placement
    versions: Mapping[str, str]
    context_written: str | None = None
    log_tail: tuple[str, ...] = ()

    @property
    def first_run_ms(self) -> float:
        return self.run_ms[0]

    @property
    def warm_run_ms(self) -> float | None:
        """Median of the runs after the first; None with a single run."""
        return median(self.run_ms[1:]) if len(self.run_ms) > 1 else None

    @property
    def clock(self) -> str:
        return "HTP simulator (x86_64 CPU), client perf_counter" if self.simulated else "client perf_counter"

    @property
    def uses_context(self) -> bool:
        """True when the session ran a precompiled EPContext node on QNN."""
        return any(n.op_type == "EPContext" and n.provider == EP for n in self.placement.nodes)


@dataclass(frozen=True)
class CompileCache:
    """Cold compile vs a load from the compile cache (EPContext model), fresh processes."""

    cold: Probe
    generate: Probe
    cached: Probe
    context_model: str
    context_bytes: int

    @property
    def speedup(self) -> float | None:
        """Cold session creation / cached session creation."""
        return None if self.cached.session_s <= 0 else self.cold.session_s / self.cached.session_s


@dataclass(frozen=True)
class QnnReport:
    """Everything the NPU section checks for one ONNX model."""

    model: str
    cache: CompileCache
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def cold(self) -> Probe:
        return self.cache.cold


# ----- the parent side ---------------------------------------------------------------


def available() -> str | None:
    """None when onnxruntime and onnxruntime-qnn import here, else why not."""
    try:
        import onnxruntime  # noqa: F401
        import onnxruntime_qnn  # noqa: F401
    except ImportError as exc:
        return f"cannot import {exc.name or 'onnxruntime_qnn'} ({exc})"
    return None


def require() -> None:
    reason = available()
    if reason is not None:
        raise EngineUnavailable(NAME, reason, INSTALL)


def applied_perf_mode(log: str) -> str | None:
    """The HTP performance mode the EP last set or kept, from its verbose log; None if unstated."""
    found = None
    for line in log.splitlines():
        for pattern in _MODE_LINES:
            match = pattern.search(line)
            if match:
                found = match.group(1)
    return found


def probe(
    model: Path,
    perf_mode: str = "burst",
    runs: int = 5,
    context_out: Path | None = None,
    python: str = sys.executable,
    timeout_s: float = PROBE_TIMEOUT_S,
) -> Probe:
    """Run one probe of ``model`` in a fresh process and parse what it saw."""
    if perf_mode not in PERF_MODES:
        raise ValueError(f"htp performance mode {perf_mode!r} is not one of {', '.join(PERF_MODES)}")
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    if not model.is_file():
        raise ModelError(f"ONNX model {str(model)!r} does not exist")
    cmd = [python, "-m", "npuperf.npu.qnn", "probe", str(model), "--perf-mode", perf_mode, "--runs", str(runs)]
    if context_out is not None:
        cmd += ["--context-out", str(context_out)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), *sys.path])}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ProbeError(f"QNN probe of {str(model)!r} did not finish within {timeout_s:g} s") from exc
    tail = tuple(line for line in proc.stderr.splitlines() if line.strip())[-12:]
    if proc.returncode != 0:
        raise ProbeError(
            f"QNN probe of {str(model)!r} failed (exit {proc.returncode}):\n" + "\n".join(tail or ("(no output)",))
        )
    try:
        doc = json.loads(proc.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError) as exc:
        raise ProbeError(f"QNN probe of {str(model)!r} printed no JSON result: {proc.stdout[-300:]!r}") from exc
    return Probe(
        model=str(model),
        simulated=bool(doc["simulated"]),
        device_type=str(doc["device_type"]),
        requested_perf_mode=perf_mode,
        applied_perf_mode=applied_perf_mode(proc.stderr),
        provider_options={str(k): str(v) for k, v in doc["provider_options"].items()},
        session_s=float(doc["session_s"]),
        run_ms=tuple(float(v) for v in doc["run_ms"]),
        placement=Placement(
            nodes=tuple(NodePlacement(*n) for n in doc["nodes"]),
            kernel_us={str(k): float(v) for k, v in doc["kernel_us"].items()},
        ),
        versions={str(k): str(v) for k, v in doc["versions"].items()},
        context_written=doc.get("context_written"),
        log_tail=tail,
    )


def compile_cache(model: Path, perf_mode: str, runs: int, workdir: Path) -> CompileCache:
    """Cold compile, write the EPContext model, then load it: three fresh processes.

    The context files go to ``workdir/npuperf-qnn-<model>/``, a folder of the suite's own:
    ORT refuses to write over an existing context model, so the previous run's files there
    are removed, and nothing else in ``workdir`` is touched.
    """
    cold = probe(model, perf_mode, runs)
    own = workdir / f"npuperf-qnn-{model.stem}"
    own.mkdir(parents=True, exist_ok=True)
    context = own / f"{model.stem}_ctx.onnx"
    for stale in own.glob(f"{model.stem}_ctx*"):
        stale.unlink()
    generate = probe(model, perf_mode, 1, context_out=context)
    if not context.is_file():
        raise ProbeError(f"ep.context_enable did not write {str(context)!r}")
    cached = probe(context, perf_mode, runs)
    size = sum(p.stat().st_size for p in own.glob(f"{model.stem}_ctx*") if p.is_file())
    return CompileCache(cold=cold, generate=generate, cached=cached, context_model=str(context), context_bytes=size)


def report(model: Path, perf_mode: str = "burst", runs: int = 5, workdir: Path | None = None) -> QnnReport:
    """Probe ``model`` for the NPU section; the compile cache goes to ``workdir`` (a temp dir if None)."""
    require()
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="npuperf-qnn-") as tmp:
            return QnnReport(model=str(model), cache=compile_cache(model, perf_mode, runs, Path(tmp)))
    workdir.mkdir(parents=True, exist_ok=True)
    return QnnReport(model=str(model), cache=compile_cache(model, perf_mode, runs, workdir))


# ----- the probe process ---------------------------------------------------------------


def _run_probe(model: str, perf_mode: str, runs: int, context_out: str | None) -> dict[str, Any]:
    import onnxruntime as ort
    import onnxruntime_qnn as qnn

    ort.register_execution_provider_library(qnn.get_ep_name(), qnn.get_library_path())
    devices = [d for d in ort.get_ep_devices() if d.ep_name == qnn.get_ep_name()]
    if not devices:
        raise RuntimeError(f"onnxruntime-qnn registered but offers no {EP} device")
    device_type = str(devices[0].device.type).rsplit(".", 1)[-1]
    options = ort.SessionOptions()
    options.log_severity_level = 0  # verbose: the EP logs the HTP performance mode it sets
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.gettempdir()) / f"npuperf-qnn-{os.getpid()}")
    options.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    if context_out:
        options.add_session_config_entry("ep.context_enable", "1")
        options.add_session_config_entry("ep.context_file_path", context_out)
    options.add_provider_for_devices(devices, {"backend_type": "htp", "htp_performance_mode": perf_mode})
    start = time.perf_counter()
    session = ort.InferenceSession(model, sess_options=options)
    session_s = time.perf_counter() - start
    feeds = _feeds(session.get_inputs())
    run_ms = []
    for _ in range(runs):
        t0 = time.perf_counter()
        session.run(None, feeds)
        run_ms.append((time.perf_counter() - t0) * 1000)
    nodes = [
        (n.name or f"<unnamed {n.op_type}>", n.op_type, a.ep_name)
        for a in session.get_provider_graph_assignment_info()
        for n in a.get_nodes()
    ]
    kernel_us: dict[str, float] = {}
    profile = session.end_profiling()
    try:
        for event in json.loads(Path(profile).read_text(encoding="utf-8")):
            if event.get("cat") == "Node" and str(event.get("name", "")).endswith("_kernel_time"):
                provider = str(event.get("args", {}).get("provider", "unknown"))
                kernel_us[provider] = kernel_us.get(provider, 0.0) + float(event.get("dur", 0))
    finally:
        Path(profile).unlink(missing_ok=True)
    provider_options = session.get_provider_options().get(EP, {})
    return {
        "simulated": device_type != "NPU",
        "device_type": device_type,
        "provider_options": dict(provider_options),
        "session_s": session_s,
        "run_ms": run_ms,
        "nodes": nodes,
        "kernel_us": kernel_us,
        "versions": {
            "onnxruntime": ort.__version__,
            "onnxruntime-qnn": installed_version("onnxruntime-qnn"),
        },
        "context_written": context_out if context_out and Path(context_out).is_file() else None,
    }


_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(uint16)": "uint16",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(bool)": "bool",
}


def _feeds(inputs: Sequence[Any]) -> dict[str, Any]:
    """Inputs for timing runs: seeded normal floats, zeros for integers (valid ids, positions)."""
    import numpy as np

    rng = np.random.default_rng(0)
    feeds = {}
    for inp in inputs:
        if any(not isinstance(d, int) for d in inp.shape):
            raise RuntimeError(f"input {inp.name!r} has a dynamic shape {inp.shape}; QNN needs static shapes")
        dtype = _DTYPES.get(inp.type)
        if dtype is None:
            raise RuntimeError(f"input {inp.name!r} has type {inp.type}; the probe can feed {', '.join(_DTYPES)}")
        if dtype.startswith("float"):
            feeds[inp.name] = rng.standard_normal(inp.shape).astype(dtype)
        else:
            feeds[inp.name] = np.zeros(inp.shape, dtype=dtype)
    return feeds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m npuperf.npu.qnn", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("probe", help="one fresh-process probe; prints a JSON line")
    one.add_argument("model")
    one.add_argument("--perf-mode", default="burst", choices=PERF_MODES)
    one.add_argument("--runs", type=int, default=5)
    one.add_argument("--context-out", default=None)
    args = parser.parse_args(argv)
    doc = _run_probe(args.model, args.perf_mode, args.runs, args.context_out)
    print(json.dumps(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
