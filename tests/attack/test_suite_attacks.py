"""Hostile and unlucky runs of the suite itself: names that carry markup, runs at once,
Ctrl-C, outputs that cannot be written, a grid the model cannot hold, bad options.

Numbers in the names refer to issue #12's list; each test reproduced its fault first.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from html import unescape
from pathlib import Path

import pytest

from attack.conftest import Attack
from conftest import MODEL, ROOT, chromium, copy_suite, small_suite_ini
from npuperf import atomic

pytestmark = pytest.mark.timeout(300)

PAYLOAD = "<img src=x onerror=document.body.dataset.pwned=1>"
REAL = ("--engine=ort-genai", "--token-budgets=4", "--prompt-lengths=8", "--repetitions=3")


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    return copy_suite(pytester, monkeypatch, small_suite_ini().replace(" -p no:html", ""))


def environment_of(page: str) -> dict[str, object]:
    import re

    blob = re.search(r'data-jsonblob="([^"]*)"', page)
    assert blob is not None
    env: dict[str, object] = json.loads(unescape(blob.group(1)))["environment"]
    return env


def chromium_dom(page: Path) -> str:
    return chromium(page).dom


# ----- 3: markup in anything the report shows ----------------------------------------------------


@pytest.mark.attack("suite: markup in names")
@pytest.mark.parametrize("loads", [True, False], ids=["model-loads", "model-fails"])
def test_3_a_model_folder_named_like_markup_stays_text_in_the_report(
    suite: pytest.Pytester, attack: Attack, loads: bool
) -> None:
    attack.tried()
    model = suite.path / "models" / PAYLOAD
    model.mkdir(parents=True)
    if loads:
        for part in MODEL.iterdir():
            shutil.copy(part, model / part.name)
    result = suite.runpytest("perf_tests", *REAL, f"--model={model}", "--html=reports/r.html", "--self-contained-html")
    assert result.ret == (0 if loads else 1)
    page = (suite.path / "reports" / "r.html").read_text(encoding="utf-8")
    for value in environment_of(page).values():
        assert "<" not in json.dumps(value), value  # pytest-html renders these with innerHTML
    dom = chromium_dom(suite.path / "reports" / "r.html")
    assert "data-pwned" not in dom, "the folder name ran as script"
    assert "&lt;img src=x onerror=document.body.dataset.pwned=1&gt;" in dom  # shown, as text


@pytest.mark.attack("suite: markup in names")
def test_3_a_server_reply_carrying_markup_stays_text_in_the_report(suite: pytest.Pytester, attack: Attack) -> None:
    from fakes import HtmlServer

    attack.tried()
    with HtmlServer(status=500, page=PAYLOAD.encode()) as backend:
        result = suite.runpytest(
            "perf_tests",
            "-m",
            "service",
            f"--backend-url={backend.url}",
            "--html=reports/r.html",
            "--self-contained-html",
        )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert PAYLOAD in result.stdout.str()  # the reply is quoted in the failure (as text)
    dom = chromium_dom(suite.path / "reports" / "r.html")
    assert "data-pwned" not in dom, "the server's reply ran as script"
    assert "&lt;img src=x onerror=document.body.dataset.pwned=1&gt;" in dom


# ----- 4: two recordings into one folder -------------------------------------------------------

WRITER = """
import sys
from pathlib import Path
from npuperf.judge import baselines
sys.path.insert(0, {tests!r})
from test_baselines import IDENTITY, case
path, tag = Path(sys.argv[1]), sys.argv[2]
for i in range(25):
    cid = f"t{{i}}-{{tag}}"
    baselines.update(path, IDENTITY, {{cid: case(cid)}})
"""


@pytest.mark.attack("suite: concurrent runs")
def test_4_two_writers_updating_one_baseline_file_lose_nothing(tmp_path: Path, attack: Attack) -> None:
    attack.tried(50)
    path = tmp_path / "baselines" / "b.json"
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(tests=str(ROOT / "tests")), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    procs = [subprocess.Popen([sys.executable, str(script), str(path), tag], env=env) for tag in ("a", "b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    from npuperf.judge import baselines

    assert len(baselines.load(path).cases) == 50


@pytest.mark.attack("suite: concurrent runs")
def test_4_two_update_runs_at_once_both_land(suite: pytest.Pytester, attack: Attack) -> None:
    attack.tried(2)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    cmd = [sys.executable, "-m", "pytest", "perf_tests", "-p", "no:randomly", "--update-baselines", "--history=none"]
    runs = [
        subprocess.Popen(
            [*cmd, f"--token-budgets={b}", f"--results-json=reports/{i}.json"],
            cwd=suite.path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i, b in enumerate(("16", "32,64"))
    ]
    outputs = [r.communicate(timeout=240)[0] for r in runs]
    assert [r.returncode for r in runs] == [0, 0], outputs
    (path,) = (suite.path / "baselines").rglob("*.json")
    assert set(json.loads(path.read_text(encoding="utf-8"))["cases"]) == {"t16-p8", "t32-p8", "t64-p8"}


def test_the_lock_waits_for_its_holder_and_times_out_naming_the_file(tmp_path: Path) -> None:
    lock = tmp_path / ".b.json.lock"

    def take(timeout_s: float) -> None:
        with atomic.locked(lock, timeout_s=timeout_s):
            pass

    with atomic.locked(lock):
        with pytest.raises(atomic.LockTimeout, match=r"held the lock .*\.b\.json\.lock for over 0\.2 s"):
            take(0.2)
        assert lock.exists()
    take(0.2)  # released with the block


# ----- 5: Ctrl-C --------------------------------------------------------------------------


@pytest.mark.attack("suite: interrupted runs")
@pytest.mark.parametrize(
    ("after", "says"),
    [
        ("measuring: this process", "the run was interrupted; nothing was accepted"),  # + 0.8 s: in the first case
        ("recording pass 2", "the run was interrupted; nothing was accepted"),
    ],
    ids=["during-the-grid", "during-the-second-pass"],
)
def test_5_ctrl_c_during_a_recording_accepts_nothing(
    suite: pytest.Pytester, attack: Attack, after: str, says: str
) -> None:
    attack.tried()
    # a sleeping engine, 8 tokens x 50 ms x 4 repetitions per pass: a Ctrl-C lands mid-work
    engine = ("--engine=fake", "--model=prefill_ms=2,token_ms=50", "--token-budgets=8")
    assert suite.runpytest("perf_tests", "--update-baselines", *engine).ret == 0
    (path,) = (suite.path / "baselines").rglob("*.json")
    before = path.read_bytes()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "perf_tests",
        "-p",
        "no:randomly",
        "--update-baselines",
        *engine,
        "--history=none",
    ]
    proc = subprocess.Popen(cmd, cwd=suite.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if after in line:
            break
    time.sleep(0.8)
    proc.send_signal(signal.SIGINT)
    out = "".join(seen) + proc.communicate(timeout=120)[0]
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out[-3000:]
    assert "Traceback" not in out
    assert f"baselines NOT written: {says}" in out
    assert path.read_bytes() == before
    assert [p.name for p in (suite.path / "baselines").rglob("*.json")] == [path.name]


# ----- 6: outputs that cannot be written ------------------------------------------------------


def _break(suite: pytest.Pytester, what: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make one output unwritable; the options that point the run at it."""
    reports = suite.path / "reports"
    reports.mkdir(exist_ok=True)
    if what == "results JSON is a folder":
        (reports / "perf-results.json").mkdir()
    elif what == "baselines folder is a file":
        (suite.path / "baselines").write_text("not a folder", encoding="utf-8")
    elif what == "history is a folder":
        (reports / "history.sqlite").mkdir()
    elif what == "HTML report is a folder":
        (reports / "r.html").mkdir()
    elif what == "disk full":

        def full(_fd: int) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(atomic.os, "fsync", full)
    return ["--update-baselines", "--html=reports/r.html", "--self-contained-html", "--junitxml=reports/j.xml"]


OUTPUTS = {
    "results JSON": "reports/perf-results.json",
    "history": "reports/history.sqlite",
    "HTML report": "reports/r.html",
    "JUnit XML": "reports/j.xml",
}


@pytest.mark.attack("suite: unwritable outputs")
@pytest.mark.parametrize(
    ("what", "says", "lost"),
    [
        (
            "results JSON is a folder",
            "results JSON NOT written to reports/perf-results.json: Is a directory",
            {"results JSON"},
        ),
        ("baselines folder is a file", "baselines NOT written to baselines: ", set()),
        ("history is a folder", "history NOT written to reports/history.sqlite: ", {"history"}),
        ("HTML report is a folder", "HTML report NOT written to reports/r.html: Is a directory", {"HTML report"}),
        ("disk full", "NOT written to reports/perf-results.json: No space left on device", {"results JSON"}),
    ],
)
def test_6_an_output_that_cannot_be_written_is_one_line_and_the_others_are_written(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, attack: Attack, what: str, says: str, lost: set[str]
) -> None:
    attack.tried()
    args = _break(suite, what, monkeypatch)
    result = suite.runpytest("perf_tests", *args)
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out[-3000:]
    assert "INTERNALERROR" not in out
    assert "Traceback" not in out
    assert "npuperf latency summary" in out  # the terminal summary is still shown
    assert says in out
    assert sum("NOT written" in line for line in out.splitlines()) == (2 if what == "disk full" else 1)
    for name, rel in OUTPUTS.items():
        if name not in lost:
            assert (suite.path / rel).is_file(), f"{name} was lost too"


# ----- 8: a grid the model cannot hold; 10: options and messages --------------------------------


@pytest.mark.attack("suite: bad options")
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--prompt-lengths=5000"], "--prompt-lengths: a 5000-token prompt does not fit; model tiny-qwen2 holds 2048"),
        (["--token-budgets=100000"], "--token-budgets: 100000 new tokens do not fit; model tiny-qwen2 holds 2048"),
        (
            ["--prompt-lengths=1500", "--token-budgets=1000"],
            "--prompt-lengths 1500 with --token-budgets 1000 needs 2500",
        ),
    ],
)
def test_8_a_grid_beyond_the_context_is_one_usage_error(
    suite: pytest.Pytester, attack: Attack, args: list[str], says: str
) -> None:
    attack.tried()
    result = suite.runpytest("perf_tests", "--engine=ort-genai", f"--model={MODEL}", *args)
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert says in out
    assert out.count(says) == 1
    assert "Traceback" not in out


@pytest.mark.attack("suite: bad options")
def test_10_a_model_load_error_is_said_once_without_its_chain(
    suite: pytest.Pytester, attack: Attack, tmp_path: Path
) -> None:
    attack.tried()
    broken = tmp_path / "broken"
    shutil.copytree(MODEL, broken)
    (broken / "model.onnx").write_bytes(b"\x00" * 100)
    result = suite.runpytest("perf_tests", "--engine=ort-genai", f"--model={broken}", "-x")
    out = result.stdout.str()
    assert "During handling of the above exception" not in out
    assert "The above exception was the direct cause" not in out
    report = out.split("short test summary")[0]  # the summary line repeats it, as wide as the terminal
    assert report.count("cannot load model folder") == 1


@pytest.mark.attack("suite: bad options")
def test_10_require_baseline_without_one_says_so_and_is_not_re_measured(suite: pytest.Pytester, attack: Attack) -> None:
    attack.tried()
    result = suite.runpytest("perf_tests", "--require-baseline")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "a baseline is required (--require-baseline)" in out
    assert "confirmed on" not in out
    assert "+0.0%" not in out


@pytest.mark.attack("suite: bad options")
@pytest.mark.parametrize("name", ["update_baselines", "fail_inconclusive"])
def test_10_a_bad_boolean_in_the_ini_names_the_option(suite: pytest.Pytester, attack: Attack, name: str) -> None:
    attack.tried()
    result = suite.runpytest("perf_tests", "-o", f"npuperf_{name}=maybe")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    flag = "--" + name.replace("_", "-")
    result.stderr.fnmatch_lines([f"*{flag}: 'maybe' is not a boolean; expected true or false (set as npuperf_{name}*"])
