"""pytest glue: options, configure, thin hooks, fixtures. Loaded with ``-p npuperf.plugin``
(the repository's pytest.ini does it).

The work is done by the sections in ``npuperf.suite`` (one PerfSession per run, kept in
``config.stash``); each hook here hands over to them in a few lines.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from npuperf.report import PROPERTY_PREFIX
from npuperf.report import html as html_report
from npuperf.settings import OPTIONS, Option, SettingsError, resolve
from npuperf.suite import environment
from npuperf.suite.outputs import Outputs
from npuperf.suite.run import NOT_JUDGED
from npuperf.suite.session import PerfSession

SESSION = pytest.StashKey[PerfSession]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("npuperf", "npuperf latency regression suite")
    for opt in OPTIONS:
        # argparse %-formats help strings: a literal "10%" in a help text must reach it as "10%%"
        helptext = f"{opt.help} (ini: {opt.ini}; default: {opt.default or 'none'})".replace("%", "%%")
        action = "store_true" if opt.kind == "flag" else "store"
        group.addoption(opt.flag, *opt.aliases, action=action, default=None, dest=opt.dest, help=helptext)
        # a flag's ini value is parsed by npuperf too, so a bad one names the option
        parser.addini(opt.ini, opt.help, default=opt.default)


def _raw(config: pytest.Config, opt: Option) -> str:
    """The command line's value, else pytest.ini's (which has the default)."""
    value = config.getoption(opt.dest)
    if value is None:
        value = config.getini(opt.ini)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _from_ini(config: pytest.Config, message: str) -> str:
    """A bad value set in pytest.ini or with -o names the ini key too, not only the flag."""
    for opt in OPTIONS:
        if message.startswith(opt.flag + ":") and config.getoption(opt.dest) is None:
            return f"{message} (set as {opt.ini} in the ini file or with -o)"
    return message


def _refuse_blocked_outputs(config: pytest.Config) -> None:
    """pytest-html makes its report's folder at configure time, and a file in the way is an
    INTERNALERROR traceback there (JUnit XML's comes at the end, after the run): say it first."""
    for flag, dest in (("--html", "htmlpath"), ("--junitxml", "xmlpath")):
        where = getattr(config.option, dest, None)
        for parent in reversed(Path(where).absolute().parents) if where else ():
            if parent.exists() and not parent.is_dir():
                raise pytest.UsageError(
                    f"{flag} {where}: {parent} is a file, not a folder; move it or choose another path"
                )


@pytest.hookimpl(tryfirst=True)  # before pytest-html makes its folder
def pytest_configure(config: pytest.Config) -> None:
    _refuse_blocked_outputs(config)
    config.addinivalue_line("markers", "npuperf: a latency case of the npuperf suite")
    config.addinivalue_line("markers", "npu: an NPU check (QNN placement, perf mode, compile cache; Genie config)")
    config.addinivalue_line("markers", "service: a check of the backend service over HTTP (--backend-url)")
    try:
        settings = resolve(lambda opt: _raw(config, opt), config.rootpath)
    except SettingsError as exc:
        raise pytest.UsageError(_from_ini(config, str(exc))) from None
    perf = config.stash[SESSION] = PerfSession(config, settings)
    if config.pluginmanager.hasplugin("html"):
        config.pluginmanager.register(HtmlHooks(perf), "npuperf-html")


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[SESSION].validate()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    config.stash[SESSION].order(items)


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> tuple[str, str, str] | None:
    """A case that could not be judged (a busy machine) is a state of its own: letter J, NOT JUDGED."""
    if report.skipped and NOT_JUDGED in str(report.longrepr):
        return "not judged", "J", "NOT JUDGED"
    return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    perf = metafunc.config.stash[SESSION]
    if "npuperf_http_budget" in metafunc.fixturenames:
        budgets = perf.settings.token_budgets
        metafunc.parametrize("npuperf_http_budget", budgets, ids=[f"t{n}" for n in budgets])
    if "npuperf_case" in metafunc.fixturenames:
        specs = perf.latency.specs
        metafunc.parametrize("npuperf_case", specs, ids=[s.id for s in specs])


@pytest.hookimpl(tryfirst=True)  # before pytest-html writes its report, which shows the notes
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[SESSION].outputs.finish(session, exitstatus)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    write_summary(terminalreporter, config.stash[SESSION].outputs)


def write_summary(terminalreporter: Any, outputs: Outputs) -> None:
    """The run's summary, or its notes when nothing was measured (Ctrl-C, a model that did not
    load); then what must not be missed, right above pytest's last line, which counts a refusal."""
    if outputs.anything:
        terminalreporter.write_sep("=", "npuperf latency summary")
        for line in outputs.summary():
            terminalreporter.write_line(line.text, yellow=line.warn)
    elif outputs.run.notes:
        terminalreporter.write_sep("=", "npuperf")
        for note in outputs.run.notes:
            terminalreporter.write_line(note)
    for words in outputs.last_words():
        terminalreporter.write_line(words, red=True, bold=True)
    if outputs.refused:  # "36 passed, 1 baselines not written"
        terminalreporter.stats.setdefault("baselines not written", []).append(outputs.refused)


def pytest_unconfigure(config: pytest.Config) -> None:
    if SESSION in config.stash:
        config.stash[SESSION].close()


class HtmlHooks:
    """pytest-html hooks; registered only when pytest-html is active (its hook specs exist)."""

    def __init__(self, perf: PerfSession) -> None:
        self.perf = perf

    @pytest.hookimpl(wrapper=True, trylast=True)  # inside the terminal's wrapper: the summary still shows
    def pytest_sessionfinish(self, session: pytest.Session) -> Any:
        try:
            return (yield)
        except OSError as exc:  # pytest-html (or another plugin) could not write its file
            html = session.config.getoption("htmlpath", None)
            mine = html and exc.filename and Path(exc.filename).resolve() == Path(html).resolve()
            self.perf.outputs.not_written(session, "HTML report" if mine else "an output", exc)
            return None

    def pytest_html_report_title(self, report: Any) -> None:
        report.title = "npuperf latency report"

    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        cells.extend(html_report.header_cells())

    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        html_report.inert_test_id(report.nodeid, report.when or "call", cells)
        prefix = PROPERTY_PREFIX
        props = {str(k)[len(prefix) :]: str(v) for k, v in report.user_properties if str(k).startswith(prefix)}
        cells.extend(html_report.row_cells(props))

    def pytest_html_results_summary(self, prefix: list[str], summary: list[str], postfix: list[str]) -> None:
        if self.perf.outputs.anything:
            prefix.append(self.perf.outputs.page())
        environment.make_inert(self.perf.run.config)  # pytest-html writes the page right after this hook


@pytest.fixture(scope="session", autouse=True)
def npuperf_junit_suite(pytestconfig: pytest.Config, record_testsuite_property: Any) -> Any:
    """After the run, the environment (engine, device, model...) as JUnit XML suite properties."""
    yield
    perf = pytestconfig.stash[SESSION]
    if perf.latency.loaded is not None:
        for name, value in perf.latency.environment().items():
            slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
            record_testsuite_property(PROPERTY_PREFIX + ("version" if slug == "npuperf" else slug), value)


@pytest.fixture(scope="session")
def npuperf_session(pytestconfig: pytest.Config) -> PerfSession:
    """The run's PerfSession: settings and the sections (latency, npu, service, outputs)."""
    return pytestconfig.stash[SESSION]
