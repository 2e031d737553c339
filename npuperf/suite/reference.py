"""What a run's cases are compared with: the accepted baseline (from a file), or the reference
processes of an A/B run measured alongside (``--ab-model``, ``--ab-python``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from npuperf.judge import baselines
from npuperf.judge.stats import Groups, KeyedGroups
from npuperf.measure import METRICS, CaseResult


@dataclass(frozen=True)
class Reference:
    """Per case and metric, the reference samples grouped by process, and what goes with them.

    ``paired``: the i-th group of a case and the i-th group of the run's own results were measured
    next to each other in time (A/B), so the verdict is paired. ``advisory``: why a regression
    against it is shown, not failed (another host's baseline), '' when it is enforced.
    """

    cases: Mapping[str, Mapping[str, Groups]] = field(default_factory=dict)
    noise: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    grid_noise: float | None = None
    provenance: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    recorded_at: Mapping[str, str] = field(default_factory=dict)
    shape: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # case -> (prompt tokens, new tokens)
    paired: bool = False
    advisory: str = ""
    describe: str = "baseline"

    def has(self, case_id: str) -> bool:
        return case_id in self.cases

    def keyed(self, case_id: str) -> KeyedGroups:
        """The case's latency groups keyed by their position (process or pair index)."""
        return dict(enumerate(self.cases[case_id]["latency_ms"]))

    def noise_floor(self, case_id: str, metric: str) -> float | None:
        return self.noise.get(case_id, {}).get(metric)


def from_baseline(file: baselines.BaselineFile, advisory: str = "") -> Reference:
    """The accepted baseline's cases."""
    return Reference(
        cases={cid: {m: tuple(gs) for m, gs in c.samples.items()} for cid, c in file.cases.items()},
        noise={cid: {m: f for m in METRICS if (f := file.noise_floor(cid, m)) is not None} for cid in file.cases},
        grid_noise=file.grid_noise("latency_ms"),
        provenance={cid: c.provenance for cid, c in file.cases.items()},
        recorded_at={cid: c.recorded_at for cid, c in file.cases.items()},
        shape={cid: (c.prompt_tokens, c.new_tokens) for cid, c in file.cases.items()},
        advisory=advisory,
        describe="baseline of another host" if advisory else "baseline",
    )


def from_ab(results: Mapping[str, CaseResult], provenance: Mapping[str, str], what: str) -> Reference:
    """An A/B run's reference side: each case's groups in pair order (paired with the model's)."""
    return Reference(
        cases={cid: {m: r.groups(m) for m in METRICS} for cid, r in results.items()},
        provenance={cid: provenance for cid in results},
        shape={cid: (r.case.prompt.tokens, r.case.new_tokens) for cid, r in results.items()},
        paired=True,
        describe=f"reference A ({what}, interleaved)",
    )
