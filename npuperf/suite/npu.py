"""The NPU section: the QNN probes of --qnn-model and their checks; the Genie config and its checks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from npuperf.engines.base import EngineError, ModelError
from npuperf.engines.genie.config import GenieConfig, inspect_config
from npuperf.judge.verdict import Check, circuit_breaker, load_budget
from npuperf.measure import Loaded
from npuperf.npu import checks as npu_checks
from npuperf.npu import qnn
from npuperf.suite.latency import LatencySection
from npuperf.suite.run import Memo, Run, attempt, fail, skip


class NpuSection:
    """Does the NPU do the work, in the requested mode, and is its compile cache used?"""

    def __init__(self, run: Run, latency: LatencySection) -> None:
        self.run = run
        self.latency = latency
        self._qnn: Memo[qnn.QnnReport] = Memo()

    @property
    def probed(self) -> qnn.QnnReport | None:
        """The QNN report, if the probes ran."""
        return self._qnn.value

    # ----- ONNX Runtime QNN ----------------------------------------------------------------
    def qnn_report(self) -> qnn.QnnReport:
        """Probe --qnn-model once per session (three fresh processes); later calls reuse it."""
        return self._qnn.get(self._probe)

    def _probe(self) -> qnn.QnnReport:
        s = self.run.settings
        if not s.qnn_model:
            skip("--qnn-model is 'none': the QNN checks are off")
        reason = qnn.available()
        if reason is not None:
            skip(f"the QNN checks need onnxruntime-qnn: {reason}; install it with: {qnn.INSTALL}")
        model = self.run.path(s.qnn_model)
        self.run.progress(
            f"QNN checks: probing {self.run.show(model)} in fresh processes (cold compile, context write, cached load)"
        )
        cache_dir = self.run.path(s.qnn_cache_dir) if s.qnn_cache_dir else None
        report = attempt(
            lambda: qnn.report(model, s.htp_perf_mode, s.qnn_runs, workdir=cache_dir),
            (EngineError, OSError, ValueError),
            lambda exc: f"QNN checks on {self.run.show(model)}: {exc}",
        )
        if report.cold.simulated:
            self.run.notes.append(
                f"QNN timings are HTP simulator timings (QNN EP device type {report.cold.device_type} on this "
                "machine), not device figures; device budgets are not applied to them"
            )
        return report

    def check_qnn_placement(self, report: qnn.QnnReport) -> Check:
        return self.run.enforce(npu_checks.qnn_placement(report.cold))

    def check_qnn_perf_mode(self, report: qnn.QnnReport) -> Check:
        return self.run.enforce(npu_checks.qnn_perf_mode(report.cold, self.run.settings.htp_perf_mode))

    def check_qnn_compile_cache(self, report: qnn.QnnReport) -> Check:
        return self.run.enforce(npu_checks.qnn_compile_cache(report.cache))

    def check_qnn_load(self, report: qnn.QnnReport) -> Check:
        cold = report.cold
        if cold.simulated:
            skip(
                f"HTP simulator: cold session creation (compile) took {cold.session_s:.3f} s here; simulator "
                f"timings are reported, not checked against the {self.run.settings.load_budget_s:g} s device budget"
            )
        return self.run.enforce(load_budget(cold.session_s, self.run.settings.load_budget_s))

    def check_qnn_cold_call(self, report: qnn.QnnReport) -> Check:
        cold = report.cold
        warm = cold.warm_run_ms
        versus = "" if warm is None else f"; warm median {warm:.1f} ms (cold is x{cold.first_run_ms / warm:.1f})"
        if cold.simulated:
            skip(
                f"HTP simulator: first run {cold.first_run_ms:.1f} ms{versus}; simulator timings are reported, "
                f"not checked against the {self.run.settings.breaker_ms:g} ms breaker"
            )
        check = circuit_breaker(f"{report.model}: cold first run", cold.first_run_ms, self.run.settings.breaker_ms)
        return self.run.enforce(replace(check, message=check.message + versus))

    # ----- Qualcomm Genie -------------------------------------------------------------------
    def genie_config(self) -> GenieConfig:
        """The Genie bundle's config (read without loading it); skips when the engine is not Genie."""
        self._loaded_genie()
        path = Path(self.latency.measuring.options().model)
        return attempt(lambda: inspect_config(path), (ModelError,), lambda exc: f"Genie config: {exc}")

    def _loaded_genie(self) -> Loaded:
        if self.run.settings.engine != "genie":
            skip(
                f"the engine under test is {self.run.settings.engine!r}; the Genie checks run with "
                "--engine genie --model <bundle>/genie_config.json"
            )
        loaded = self.latency.load()
        if loaded.info.engine != "genie":
            fail(f"--engine genie made a {loaded.info.engine!r} engine, not the Genie engine")
        return loaded

    def check_genie_backend(self) -> Check:
        loaded = self._loaded_genie()
        return self.run.enforce(npu_checks.genie_backend(self.genie_config(), loaded.info.provider))

    def check_genie_perf_profile(self) -> Check:
        loaded = self._loaded_genie()
        applied = loaded.info.details.get("performance policy")
        return self.run.enforce(
            npu_checks.genie_perf_profile(self.genie_config(), self.run.settings.htp_perf_mode, applied)
        )
