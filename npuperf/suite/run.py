"""The run: settings, paths, progress, notes, one memo, and one way to record a check and fail.

Shared by every section. ``fail`` and ``skip`` end the current test with a message only
(no traceback: the message names the value, the limit and the case).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Generic, NoReturn, TypeVar

import pytest

from npuperf import __version__
from npuperf.judge.verdict import Check, Outcome
from npuperf.machine import device
from npuperf.machine.load import LoadMeter
from npuperf.models import twins
from npuperf.settings import Settings

T = TypeVar("T")
EMBEDDED_TOKENIZER = "models/tiny-qwen2/tokenizer.json"


def fail(message: str) -> NoReturn:
    """Fail the current test with ``message`` alone: raised inside an ``except`` block it
    carries no chain (a model-load error was printed three times, once per wrapping)."""
    raise pytest.fail.Exception(message, pytrace=False) from None


def skip(reason: str) -> NoReturn:
    """Skip reported at the test that asked, not at this module's line."""
    raise pytest.skip.Exception(reason, _use_item_location=True)


NOT_JUDGED = "NOT JUDGED"


def not_judged(message: str) -> NoReturn:
    """End the current test as NOT JUDGED: not passed, not failed, reported as a state of its own
    (the plugin's pytest_report_teststatus; a skip with this prefix in JUnit XML)."""
    raise pytest.skip.Exception(f"{NOT_JUDGED}: {message}", _use_item_location=True)


def attempt(fn: Callable[[], T], errors: tuple[type[Exception], ...], describe: Callable[[Exception], str]) -> T:
    """``fn()``, or fail the test with ``describe(error)`` for one of ``errors``.

    The failure is raised outside the handler, so the report shows the message and not
    a chain of tracebacks.
    """
    problem = ""
    try:
        return fn()
    except errors as exc:
        problem = describe(exc)
    fail(problem)


class Memo(Generic[T]):
    """A value made once per session, or the skip / failure that stopped it.

    Every later test that asks gets the same value, or the same skip or failure, without
    trying again (a model that fails to load fails every test that needs it, once each).
    """

    def __init__(self) -> None:
        self._value: T | None = None
        self._stopped: BaseException | None = None

    @property
    def value(self) -> T | None:
        return self._value

    def get(self, make: Callable[[], T]) -> T:
        if self._value is not None:
            return self._value
        if self._stopped is not None:
            raise self._stopped
        try:
            self._value = make()
        except (pytest.skip.Exception, pytest.fail.Exception) as exc:
            self._stopped = exc
            raise
        return self._value


def git_commit(root: Path) -> str:
    """The checkout's commit (12 hex digits), or 'unknown'."""
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


class Run:
    """What every section shares: settings, paths, progress, notes and the session's checks."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.notes: list[str] = []
        self.checks: list[Check] = []  # session-level checks (load, cold call, NPU, service), in order
        self.meter = LoadMeter()
        self._model: Memo[str] = Memo()

    def busy(self, cores: float | None) -> bool:
        """Did the rest of the machine keep more than --max-background-cores busy?"""
        return cores is not None and cores > self.settings.max_background_cores

    @property
    def root(self) -> Path:
        return self.config.rootpath

    @property
    def is_worker(self) -> bool:
        """An xdist worker: it measures, the controller writes the files."""
        return hasattr(self.config, "workerinput")

    def path(self, value: str) -> Path:
        """A setting's path, relative to the rootdir unless absolute."""
        path = Path(value)
        return path if path.is_absolute() else self.root / path

    def show(self, path: Path) -> str:
        """A path as the user would type it: relative to the rootdir when inside it."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def progress(self, message: str) -> None:
        """A line on the terminal now, even while output is captured (long work)."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None:
            return
        if capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(f"npuperf: {message}")
        else:
            reporter.write_line(f"npuperf: {message}")

    def enforce(self, check: Check) -> Check:
        """Record a session check; fail the test when it failed (or is INCONCLUSIVE with --fail-inconclusive)."""
        self.checks.append(check)
        if check.failed:
            fail(check.message)
        if check.outcome is Outcome.INCONCLUSIVE and self.settings.fail_inconclusive:
            fail(check.message + "\n(--fail-inconclusive is set)")
        return check

    def model(self) -> str:
        """--model as a path; a shape twin (synthetic:<preset>) is built into the cache first, once.
        A twin that cannot be had fails every test that needs it with the reason, once each."""
        return self._model.get(self._resolve_model)

    def _resolve_model(self) -> str:
        s = self.settings
        if not s.model.startswith(twins.PREFIX):
            return str(self.path(s.model)) if s.model else ""
        try:
            return twins.resolve(s.model, self.progress)
        except twins.TwinError as exc:
            fail(f"--model {s.model}: {exc}")

    def http_tokenizer(self) -> Path:
        """--http-tokenizer; else the --model's tokenizer.json (folder, or a Genie config's folder); else embedded."""
        s = self.settings
        if s.http_tokenizer:
            return self.path(s.http_tokenizer)
        model = Path(self.model()) if s.model and s.engine != "http" else None
        if model is not None:
            for candidate in (model / "tokenizer.json", model.parent / "tokenizer.json"):
                if candidate.is_file():
                    return candidate
        return self.path(EMBEDDED_TOKENIZER)

    def environment(self) -> dict[str, str]:
        """The machine and checkout (the engine section adds the engine's)."""
        dev = device.fingerprint()
        return {
            "npuperf": __version__,
            "Device": f"{dev['cpu']} ({dev['os']} {dev['arch']}, {dev['cores']} cores)",
            "Commit": git_commit(self.root),
        }
