"""Every run's figures, kept: a SQLite store the nightly job appends to (``reports/history.sqlite``).

Why SQLite (the standard library's ``sqlite3``): one file that a CI cache or artifact can
carry from night to night; a run is one transaction, so a crash or a SIGKILL mid-write
leaves every earlier run intact (SQLite's atomic commit and its journal); concurrent
writers are serialised by SQLite's own locks (WAL mode, a busy timeout), so two suites
writing one history both land; readers never block writers. No server, nothing to
install, the same on Windows on ARM. WAL needs a local disk: do not put the history on
a network share (SQLite's documentation says why).

Schema: ``PRAGMA user_version`` is the schema version; ``MIGRATIONS[k]`` takes a store
from version k to k + 1. A store newer than this npuperf is refused by name, a corrupt one
is reported with its path and never written to.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from npuperf.judge.stats import Summary

BUSY_TIMEOUT_MS = 30_000  # a nightly never waits this long for another run's one transaction
METRICS = ("latency_ms", "ttft_ms", "tpot_ms")

MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created TEXT NOT NULL,
        identity TEXT NOT NULL,
        identity_digest TEXT NOT NULL,
        provenance TEXT NOT NULL,
        commit_id TEXT NOT NULL,
        settings TEXT NOT NULL,
        outcome TEXT NOT NULL,
        label TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX runs_by_identity ON runs (identity_digest, id);
    CREATE TABLE cases (
        run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        case_id TEXT NOT NULL,
        prompt TEXT NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        new_tokens INTEGER NOT NULL,
        sampling TEXT NOT NULL,
        budget_ms REAL NOT NULL,
        outcome TEXT NOT NULL,
        PRIMARY KEY (run_id, case_id)
    );
    CREATE TABLE samples (
        run_id INTEGER NOT NULL,
        case_id TEXT NOT NULL,
        metric TEXT NOT NULL,
        n INTEGER NOT NULL,
        median REAL NOT NULL,
        p90 REAL NOT NULL,
        min REAL NOT NULL,
        max REAL NOT NULL,
        samples TEXT NOT NULL,
        PRIMARY KEY (run_id, case_id, metric),
        FOREIGN KEY (run_id, case_id) REFERENCES cases (run_id, case_id) ON DELETE CASCADE
    );
    """,
    # 1 -> 2: a case's samples may come from several processes; each metric then also has a row
    # "groups:<metric>" holding a list per process (an older npuperf refuses this history by its version)
    "SELECT 1",
)
VERSION = len(MIGRATIONS)
GROUPS = "groups:"


class HistoryError(Exception):
    """The history cannot be opened, read or written; the message names the file."""


@dataclass(frozen=True)
class CaseRun:
    """One case of one run: its shape, its verdict and its samples per metric."""

    case_id: str
    prompt: str
    prompt_tokens: int
    new_tokens: int
    sampling: str
    budget_ms: float
    outcome: str
    samples: Mapping[str, tuple[float, ...]]
    # per metric, the samples of each process that measured them (empty: one process, or not kept)
    groups: Mapping[str, tuple[tuple[float, ...], ...]] = field(default_factory=dict)

    def median(self, metric: str) -> float | None:
        values = self.samples.get(metric)
        return Summary.of(values).median if values else None

    def groups_of(self, metric: str) -> tuple[tuple[float, ...], ...]:
        """``metric``'s samples per process (all of them as one group when the run kept no grouping)."""
        if self.groups.get(metric):
            return self.groups[metric]
        values = self.samples.get(metric, ())
        return (tuple(values),) if values else ()


@dataclass(frozen=True)
class Run:
    """What the history keeps of one run of the suite."""

    created: str
    identity: Mapping[str, Any]
    identity_digest: str
    provenance: Mapping[str, str]
    commit: str
    settings: Mapping[str, Any]
    outcome: str  # passed | failed | interrupted | ...
    cases: Mapping[str, CaseRun] = field(default_factory=dict)
    id: int | None = None
    label: str = ""

    @property
    def title(self) -> str:
        return f"run {self.id} ({self.created[:16].replace('T', ' ')}, {self.outcome})"


class History:
    """A history file: ``record`` a run, ``runs`` to read them back (oldest first)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _connect(self, create: bool) -> Iterator[sqlite3.Connection]:
        if not create and not self.path.is_file():
            raise HistoryError(f"{self.path}: no history here (a run with --history {self.path} creates it)")
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise HistoryError(f"{self.path}: cannot open the history ({exc})") from exc
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._migrate(conn)
            yield conn
        except sqlite3.DatabaseError as exc:
            raise HistoryError(f"{self.path}: not a usable npuperf history ({exc}); it was left as it is") from exc
        finally:
            conn.close()

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > VERSION:
            raise HistoryError(
                f"{self.path}: history schema {version} is newer than this npuperf's ({VERSION}); upgrade npuperf"
            )
        if version == VERSION:
            return
        if self._wal(conn) != "wal":
            raise HistoryError(f"{self.path}: SQLite cannot use WAL here (a network share?); use a local path")
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = conn.execute("PRAGMA user_version").fetchone()[0]  # another run may have migrated
            for step in range(current, VERSION):
                for statement in filter(str.strip, MIGRATIONS[step].split(";")):
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _wal(conn: sqlite3.Connection) -> str:
        """Switch to WAL. Two runs creating one new history race here, and this pragma answers
        "database is locked" at once instead of waiting: retry within the busy timeout."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def record(self, run: Run) -> int:
        """Append ``run`` in one transaction; returns its id."""
        with self._connect(create=True) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                run_id = self._insert(conn, run)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return run_id

    @staticmethod
    def _insert(conn: sqlite3.Connection, run: Run) -> int:
        cursor = conn.execute(
            "INSERT INTO runs (created, identity, identity_digest, provenance, commit_id, settings, outcome, label)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run.created,
                json.dumps(run.identity, sort_keys=True),
                run.identity_digest,
                json.dumps(run.provenance, sort_keys=True),
                run.commit,
                json.dumps(run.settings, sort_keys=True, default=str),
                run.outcome,
                run.label,
            ),
        )
        run_id = int(cursor.lastrowid or 0)
        for case in run.cases.values():
            conn.execute(
                "INSERT INTO cases VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, case.case_id, case.prompt, case.prompt_tokens, case.new_tokens, case.sampling,
                 case.budget_ms, case.outcome),
            )  # fmt: skip
            for metric, values in case.samples.items():
                if not values:
                    continue
                s = Summary.of(values)
                conn.execute(
                    "INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id, case.case_id, metric, s.n, s.median, s.p90, s.min, s.max, json.dumps(list(values))),
                )
            for metric, groups in case.groups.items():
                flat = [v for g in groups for v in g]
                if len(groups) < 2 or not flat:
                    continue
                s = Summary.of(flat)
                conn.execute(
                    "INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id, case.case_id, GROUPS + metric, s.n, s.median, s.p90, s.min, s.max,
                     json.dumps([list(g) for g in groups])),
                )  # fmt: skip
        return run_id

    def runs(self, identity_digest: str | None = None, last: int | None = None) -> list[Run]:
        """The runs (of one identity, if given), oldest first; only the ``last`` N if given."""
        with self._connect(create=False) as conn:
            where, args = ("WHERE identity_digest = ?", [identity_digest]) if identity_digest else ("", [])
            limit = f"LIMIT {int(last)}" if last else ""
            rows = conn.execute(f"SELECT * FROM runs {where} ORDER BY id DESC {limit}", args).fetchall()
            return [self._run(conn, row) for row in reversed(rows)]

    def run(self, run_id: int) -> Run:
        with self._connect(create=False) as conn:
            row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                last = conn.execute("SELECT max(id) FROM runs").fetchone()[0]
                raise HistoryError(f"{self.path}: no run {run_id}; runs are numbered 1..{last or 0}")
            return self._run(conn, row)

    @staticmethod
    def _run(conn: sqlite3.Connection, row: Sequence[Any]) -> Run:
        run_id = int(row[0])
        samples: dict[str, dict[str, tuple[float, ...]]] = {}
        groups: dict[str, dict[str, tuple[tuple[float, ...], ...]]] = {}
        for case_id, metric, values in conn.execute(
            "SELECT case_id, metric, samples FROM samples WHERE run_id = ?", (run_id,)
        ):
            if metric.startswith(GROUPS):
                parsed = tuple(tuple(float(v) for v in g) for g in json.loads(values))
                groups.setdefault(case_id, {})[metric.removeprefix(GROUPS)] = parsed
            else:
                samples.setdefault(case_id, {})[metric] = tuple(float(v) for v in json.loads(values))
        cases = {
            c[1]: CaseRun(
                c[1], c[2], int(c[3]), int(c[4]), c[5], float(c[6]), c[7], samples.get(c[1], {}), groups.get(c[1], {})
            )
            for c in conn.execute("SELECT * FROM cases WHERE run_id = ? ORDER BY rowid", (run_id,))
        }
        return Run(
            created=row[1],
            identity=json.loads(row[2]),
            identity_digest=row[3],
            provenance=json.loads(row[4]),
            commit=row[5],
            settings=json.loads(row[6]),
            outcome=row[7],
            label=row[8],
            cases=cases,
            id=run_id,
        )
