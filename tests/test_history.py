"""The history store: round trip, schema versions, corrupt files, concurrent writers, SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT
from npuperf.judge.history import VERSION, CaseRun, History, HistoryError, Run


def a_run(label: str = "", cases: int = 2, samples: int = 10, latency: float = 5.0) -> Run:
    return Run(
        created="2026-11-26T07:00:00+00:00",
        identity={"engine": "fake", "model_id": "m"},
        identity_digest="abc123",
        provenance={"model sha256": "11", "commit": "c0"},
        commit="c0",
        settings={"repetitions": samples},
        outcome="passed",
        label=label,
        cases={
            f"t{i}-p8": CaseRun(
                f"t{i}-p8",
                "corpus-8",
                8,
                i,
                "greedy",
                500.0,
                "ok",
                {"latency_ms": tuple(latency + k / 100 for k in range(samples)), "ttft_ms": (1.0,) * samples},
            )
            for i in range(1, cases + 1)
        },
    )


def test_a_run_round_trips_with_its_samples_and_provenance(tmp_path: Path) -> None:
    store = History(tmp_path / "h.sqlite")
    first = store.record(a_run("first"))
    second = store.record(a_run("second", latency=6.0))
    assert (first, second) == (1, 2)
    runs = store.runs()
    assert [r.label for r in runs] == ["first", "second"]
    back = store.run(2)
    assert back.provenance == {"model sha256": "11", "commit": "c0"}
    assert back.cases["t2-p8"].samples["latency_ms"][:2] == (6.0, 6.01)
    assert back.cases["t2-p8"].median("latency_ms") == pytest.approx(6.045)
    assert [r.id for r in store.runs(last=1)] == [2]
    assert store.runs(identity_digest="other") == []


def test_a_new_store_has_the_current_schema_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    History(path).record(a_run())
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_a_newer_schema_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    History(path).record(a_run())
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {VERSION + 1}")
    conn.close()
    with pytest.raises(HistoryError, match=f"history schema {VERSION + 1} is newer than this npuperf's"):
        History(path).record(a_run())


def test_a_corrupt_file_is_reported_with_its_path_and_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    junk = b"not a database, but somebody's file" * 200
    path.write_bytes(junk)
    with pytest.raises(HistoryError, match=f"{path}: not a usable npuperf history"):
        History(path).record(a_run())
    with pytest.raises(HistoryError, match="not a usable npuperf history"):
        History(path).runs()
    assert path.read_bytes() == junk


def test_reading_a_missing_history_says_how_one_is_made(tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match="no history here"):
        History(tmp_path / "none.sqlite").runs()
    assert not (tmp_path / "none.sqlite").exists()


def test_an_unknown_run_names_the_range(tmp_path: Path) -> None:
    store = History(tmp_path / "h.sqlite")
    store.record(a_run())
    with pytest.raises(HistoryError, match=r"no run 7; runs are numbered 1\.\.1"):
        store.run(7)


WRITER = """
import sys
sys.path.insert(0, {tests!r}); sys.path.insert(0, {root!r})
from pathlib import Path
from test_history import a_run
from npuperf.judge.history import History
store = History(Path(sys.argv[1]))
for i in range(int(sys.argv[3])):
    store.record(a_run(label=f"{{sys.argv[2]}}-{{i}}", cases=int(sys.argv[4]), samples=int(sys.argv[5])))
print("done", flush=True)
"""


def writer(path: Path, label: str, runs: int, cases: int = 2, samples: int = 10) -> subprocess.Popen[str]:
    code = WRITER.format(tests=str(ROOT / "tests"), root=str(ROOT))
    cmd = [sys.executable, "-c", code, str(path), label, str(runs), str(cases), str(samples)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_two_writers_at_once_both_land(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    # four start at once on a history that does not exist yet: they race to create it
    procs = [writer(path, name, 12) for name in "abcd"]
    errors = [proc.communicate(timeout=120)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0, 0], errors
    labels = sorted(r.label for r in History(path).runs())
    assert labels == sorted(f"{name}-{i}" for name in "abcd" for i in range(12))


@pytest.mark.slow
def test_sigkill_while_writing_leaves_every_earlier_run_intact(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    store = History(path)
    for i in range(3):
        store.record(a_run(label=f"before-{i}"))
    # big runs (200 cases x 500 samples) keep the writer inside a transaction most of the time
    proc = writer(path, "killed", 1000, cases=200, samples=500)
    time.sleep(1.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    runs = History(path).runs()
    assert [r.label for r in runs[:3]] == ["before-0", "before-1", "before-2"]
    assert all(r.cases["t1-p8"].samples["latency_ms"] for r in runs[:3])
    # every run that is there is whole: a transaction cut by the kill left nothing behind
    assert all(len(r.cases) == 200 for r in runs[3:])
    assert store.record(a_run(label="after")) == runs[-1].id + 1  # type: ignore[operator]
