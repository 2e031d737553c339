"""PerfSession: the run's sections, kept in ``config.stash`` and handed to the tests.

Tests read as ``npuperf_session.latency.verify(...)`` or
``npuperf_session.npu.check_qnn_placement(qnn)``.
"""

from __future__ import annotations

import pytest

from npuperf.engines.base import known_engines
from npuperf.measure import CaseSpec
from npuperf.settings import Settings
from npuperf.suite.latency import LatencySection, Replay
from npuperf.suite.npu import NpuSection
from npuperf.suite.outputs import Outputs
from npuperf.suite.run import Run
from npuperf.suite.service import ServiceSection


class PerfSession:
    """One per pytest session: the run and its sections."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.run = Run(config, settings)
        self.latency = LatencySection(self.run)
        self.npu = NpuSection(self.run, self.latency)
        self.service = ServiceSection(self.run)
        self.outputs = Outputs(self.run, self.latency, self.npu, self.service)

    @property
    def settings(self) -> Settings:
        return self.run.settings

    def validate(self) -> None:
        """Settings that can only be checked once every plugin (and so every engine) is registered."""
        s = self.settings
        if s.engine not in known_engines():
            raise pytest.UsageError(
                f"--engine: unknown engine {s.engine!r}; known engines: {', '.join(known_engines())}"
            )
        ids = [spec.id for spec in self.latency.specs]
        unknown = sorted(set(s.budget_overrides) - set(ids))
        if unknown:
            raise pytest.UsageError(
                f"--budgets-file: {s.budgets_file!r} names unknown case(s) {', '.join(unknown)}; "
                f"cases in this run: {', '.join(ids)}"
            )

    def order(self, items: list[pytest.Item]) -> None:
        """The service section runs last: its server process and its load test must not share
        the machine with any latency case (order is otherwise kept). The latency cases left after
        -k/-m are the ones measured, and pytest-benchmark replays each one's generations."""
        items[:] = [i for i in items if i.get_closest_marker("service") is None] + [
            i for i in items if i.get_closest_marker("service") is not None
        ]
        selected = []
        for item in items:
            spec = getattr(getattr(item, "callspec", None), "params", {}).get("npuperf_case")
            if isinstance(spec, CaseSpec):
                selected.append(spec)
                replay = self.latency.replays.setdefault(spec.id, Replay())
                item.add_marker(pytest.mark.benchmark(timer=replay))
        self.latency.measuring.selected = selected

    def close(self) -> None:
        self.latency.close()
        self.service.close()
