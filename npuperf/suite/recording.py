"""Recording the baselines (``--update-baselines``): a second pass for the noise floor, the
refusals that keep a disturbed machine's figures out, and one locked read-merge-write."""

from __future__ import annotations

import datetime
import functools

from npuperf.judge import baselines
from npuperf.measure import METRICS, measure_case
from npuperf.suite.latency import LatencySection
from npuperf.suite.run import Run, git_commit


class Recording:
    """Writes this run's cases as the accepted baselines."""

    def __init__(self, run: Run, latency: LatencySection) -> None:
        self.run = run
        self.latency = latency

    def _refuse_a_disturbed_recording(
        self, busiest: tuple[float, str] | None, recorded: baselines.BaselineFile
    ) -> None:
        """A baseline recorded on a disturbed machine would blind every later comparison: refuse it."""
        s = self.run.settings
        if busiest is not None and self.run.busy(busiest[0]):
            raise baselines.BaselineError(
                f"the machine was busy while recording (other processes kept {busiest[0]:.2f} cores busy during "
                f"{busiest[1]}; limit --max-background-cores {s.max_background_cores:g}); a baseline recorded "
                "so would blind later comparisons: re-record on a quiet machine"
            )
        floor = recorded.grid_noise("latency_ms")
        if floor is not None and floor > s.max_noise_floor:
            raise baselines.BaselineError(
                f"the two recording passes disagree by {floor:.1%} (grid noise floor; limit --max-noise-floor "
                f"{s.max_noise_floor:.0%}): the machine was not steady; re-record on a quiet machine"
            )

    def write(self) -> None:
        """Record this run's cases as the baselines, with a second pass for the noise floor.

        The second pass measures every case again after the whole grid has run, so the two
        medians are minutes apart in a short run; their spread is the same-code noise
        stored with the baseline. Both passes' samples are kept.
        """
        lookup, identity, warm = self.latency.lookup, self.latency.identity, self.latency.warm_engine
        now = self.latency.provenance
        assert lookup is not None
        assert identity is not None
        assert now is not None
        assert warm is not None
        stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        commit = git_commit(self.run.root)
        records = self.latency.records
        self.run.progress(f"noise floor: second pass over {len(records)} case(s) for the baselines")
        new_cases = {}
        busiest: list[tuple[float, str]] = [(c, r.case_id) for r in records if (c := r.background_cores) is not None]
        for rec in records:
            first = rec.result
            second, cores = self.run.meter.measure(
                functools.partial(measure_case, warm.engine, first.case, self.run.settings.repetitions)
            )
            if cores is not None:
                busiest.append((cores, rec.case_id))
            new_cases[rec.case_id] = baselines.CaseBaseline(
                case_id=rec.case_id,
                prompt=first.case.prompt.name,
                prompt_tokens=first.case.prompt.tokens,
                new_tokens=first.case.new_tokens,
                sampling=first.case.sampling,
                samples={m: first.samples(m) + second.samples(m) for m in METRICS},
                recorded_at=stamp,
                commit=commit,
                noise={m: baselines.drift(first.samples(m), second.samples(m)) for m in METRICS if first.samples(m)},
                provenance=now,
            )
        self._refuse_a_disturbed_recording(max(busiest, default=None), baselines.BaselineFile(identity, new_cases))
        legacy = lookup.source if lookup.source is not None and lookup.source != lookup.path else None
        done = baselines.update(lookup.path, identity, new_cases, legacy_source=legacy)
        self.run.notes.append(
            f"baselines written: {len(new_cases)} case(s) to {self.run.show(lookup.path)}"
            + (f" ({done.kept} other case(s) kept)" if done.kept else "")
        )
        if done.set_aside is not None:
            self.run.notes.append(f"  the unreadable file it replaced is kept as {self.run.show(done.set_aside)}")
