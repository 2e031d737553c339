"""A busy machine: cases some of whose processes measured them while other processes kept the
machine busy are measured again once it is quiet (a bounded wait, with progress); those still
disturbed are judged on their quiet processes when at least half are quiet, and are otherwise
marked busy: their verdict is NOT JUDGED wherever the load could explain their figures."""

from __future__ import annotations

from dataclasses import dataclass

from npuperf.measure import CaseResult, CaseSpec
from npuperf.suite.measuring import Measuring, busy_processes
from npuperf.suite.run import Run


@dataclass(frozen=True)
class Busy:
    """A case measured while other processes kept the machine busy, and stayed so."""

    cores: float  # the most cores other processes kept busy while one of its processes measured it
    processes: int  # how many of its processes were disturbed
    of: int


class Settling:
    """Re-measures a busy machine's cases when it is quiet, and says which stayed busy."""

    def __init__(self, run: Run, measuring: Measuring) -> None:
        self.run = run
        self.measuring = measuring
        self.busy: dict[str, Busy] = {}
        self.specs: dict[str, CaseSpec] = {}

    def settle(self, results: dict[str, CaseResult]) -> dict[str, CaseResult]:
        """Cases some of whose processes measured them on a busy machine: measured again once it
        is quiet (a bounded wait); those still disturbed are judged on their quiet processes when
        at least half are quiet, and otherwise marked busy (their verdict says NOT JUDGED where the
        load could explain it)."""
        s = self.run.settings
        limit = s.max_background_cores
        for cid in results:  # a case measured again is judged on its new figures
            self.busy.pop(cid, None)
        busy = {cid: procs for cid, r in results.items() if (procs := busy_processes(r, limit))}
        if busy and not self.measuring.ab:
            worst = max(c or 0.0 for cid in busy for c in results[cid].background.values())
            why = f"the machine was busy while {len(busy)} case(s) were measured (others kept up to {worst:.2f} cores)"
            if self.measuring.wait_for_quiet(why):
                runs = self.measuring.measure(
                    [self.specs[cid] for cid in busy], max(len(p) for p in busy.values()), "measuring again, quiet"
                )
                for cid, procs in busy.items():
                    fresh = [r.cases[cid] for r in runs if cid in r.cases]
                    quiet = [p for p in results[cid].process_ids if p not in procs]
                    kept = [results[cid].only(quiet)] if quiet else []
                    results[cid] = CaseResult.combined(kept + fresh)
        need = max(1, (self.measuring.per_pass + 1) // 2)
        for cid, result in list(results.items()):
            procs = busy_processes(result, limit)
            quiet = [p for p in result.process_ids if p not in procs]
            if procs and len(quiet) >= need and not self.measuring.ab:
                results[cid] = result.only(quiet)
                self.run.notes.append(
                    f"{cid}: judged on the {len(quiet)} of {len(result.process_ids)} processes that measured it on a "
                    "quiet machine"
                )
            elif procs and not self.measuring.ab:
                cores = max(c or 0.0 for c in result.background.values())
                self.busy[cid] = Busy(cores=cores, processes=len(procs), of=len(result.process_ids))
        return results

    def reason(self, case_id: str) -> str:
        b = self.busy[case_id]
        s = self.run.settings
        return (
            f"the machine was busy: other processes kept up to {b.cores:.2f} cores busy (limit "
            f"--max-background-cores {s.max_background_cores:g}) while {b.processes} of its {b.of} processes "
            f"measured it, and it did not stay quiet through a {s.quiet_wait_s:g} s wait"
        )
