"""Finding the accepted baseline: this run's identity (device, engine, provider, model, host) and
provenance, this host's file or else another host's (said first, and advisory), and the notes
that say which file was used and what changed since it was recorded."""

from __future__ import annotations

from npuperf.judge import baselines
from npuperf.machine import device
from npuperf.machine.host import host_id
from npuperf.measure import Loaded
from npuperf.suite import environment
from npuperf.suite.measuring import Measuring
from npuperf.suite.run import Run, attempt, git_commit


class BaselineFinder:
    """The run's identity and provenance, and the baseline they find."""

    def __init__(self, run: Run, measuring: Measuring) -> None:
        self.run = run
        self.measuring = measuring
        self.identity: baselines.Identity | None = None
        self.provenance: dict[str, str] | None = None

    def find(self, loaded: Loaded) -> baselines.Lookup:
        """The accepted baseline for this device, engine and model (this host's, else another's)."""
        info = loaded.info
        s = self.run.settings
        host = host_id()
        self.identity = baselines.Identity(
            device=device.fingerprint(), engine=info.engine, provider=info.provider, model_id=info.model_id, host=host
        )
        self.provenance = baselines.provenance(
            info.model_sha256,
            info.versions,
            {**info.config, **environment.suite_config(s)},
            git_commit(self.run.root),
            host=host,
        )
        identity, now = self.identity, self.provenance
        root = self.run.path(s.baselines_dir)

        def find() -> baselines.Lookup:
            try:
                return baselines.find(root, identity, now, s.baseline_match)
            except baselines.BaselineError as exc:
                if not s.update_baselines:
                    raise
                # this identity's own file is unreadable: the recording sets it aside and replaces it
                self.run.notes.append(f"baseline unreadable, to be replaced by this recording: {exc}")
                return baselines.Lookup(path=root / identity.filename(), file=None)

        lookup = attempt(find, (baselines.BaselineError,), lambda exc: f"baseline: {exc}")
        if not self.measuring.ab:
            self._note_lookup(lookup)
        return lookup

    def _note_lookup(self, lookup: baselines.Lookup) -> None:
        found, shown = lookup.file, self.run.show(lookup.path)
        s = self.run.settings
        if found is None:
            match = " with this model, runtimes and configs (--baseline-match strict)"
            self.run.notes.append(
                f"no accepted baseline at {shown}"
                + (match if lookup.near_misses and s.baseline_match == "strict" else "")
            )
            self.run.notes.extend(f"  near miss: {m}" for m in lookup.near_misses)
            return
        source = self.run.show(lookup.source) if lookup.source is not None else shown
        if lookup.other_host:
            enforced = "fail as on this host (--cross-host strict)" if s.cross_host == "strict" else "are advisory"
            self.run.notes.insert(
                0,
                f"the baseline {source} was recorded on another host ({found.identity.host_name}; this host is "
                f"{host_id()}): its regressions {enforced}; record this host's own with "
                "`pytest perf_tests --update-baselines` (written to "
                f"{shown})",
            )
        if found.schema == "npuperf.baseline/1":
            self.run.notes.append(
                f"{source} is {found.schema}: no noise floor, so thresholds are the "
                "tolerance alone; re-record with --update-baselines to add one"
            )
        elif found.schema != baselines.SCHEMA:
            self.run.notes.append(
                f"{source} is {found.schema}: samples of one process, read as one group; "
                f"--update-baselines writes {baselines.SCHEMA} to {shown}"
            )
        changed = self.changed_since(found)
        if changed:
            self.run.notes.append("changed since the baseline: " + "; ".join(changed))

    def changed_since(self, file: baselines.BaselineFile) -> list[str]:
        """What differs between this run and the provenance most of the baseline's cases were recorded with."""
        seen = [tuple(sorted(c.provenance.items())) for c in file.cases.values()]
        if not seen or self.provenance is None:
            return []
        common = max(set(seen), key=seen.count)
        return baselines.changes(dict(common), self.provenance)
