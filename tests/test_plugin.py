"""The pytest plugin end to end, through pytester, with the sleeping fake engine."""

from __future__ import annotations

import json
import re
from html import unescape as html_unescape
from html.parser import HTMLParser

import pytest

from conftest import copy_suite

INI = """
[pytest]
addopts = -p npuperf.plugin -p no:cacheprovider -m "not npu and not service"
npuperf_engine = fake
npuperf_model = prefill_ms=2,token_ms=0.5
npuperf_token_budgets = 4,8
npuperf_prompt_lengths = 8
npuperf_team_prompts = none
npuperf_repetitions = 3
npuperf_warmup = 1
npuperf_results_json = reports/results.json
npuperf_confirm_pause_s = 0
# these tests are about the verdict; tests/test_plugin_machine.py covers the machine checks
npuperf_max_background_cores = 100
npuperf_max_noise_floor = 9
# the outer run turns warnings into errors; the suite itself shows them
filterwarnings = default
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A copy of the real perf_tests/ with the fake engine registered in a root conftest."""
    return copy_suite(pytester, monkeypatch, INI)


# thresholds wide enough that sleep jitter of the fake cannot cross them
GENEROUS = ("--tolerance=0.5", "--grid-tolerance=0.5")
# the sleeping fake's workload on a virtual clock: verdict tests that must never flake
CLOCK = "--engine=fake-clock"


def run(suite: pytest.Pytester, *args: str) -> pytest.RunResult:
    return suite.runpytest("perf_tests", "-p", "no:randomly", *args)


def test_default_run_passes_every_case(suite: pytest.Pytester) -> None:
    result = run(suite)
    # 2 latency cases + load + cold call; the grid test skips without a baseline
    result.assert_outcomes(passed=4, skipped=1, warnings=2)
    result.stdout.fnmatch_lines(
        [
            "*npuperf latency summary*",
            "case*tokens*median ms*p90 ms*TTFT ms*TPOT ms*verdict",
            "t4-p8 *4 *no baseline*",
            "t8-p8 *8 *no baseline*",
            "*no accepted baseline at baselines/*",
        ]
    )


def test_a_1ms_budget_fails_every_latency_case_with_number_limit_and_case(suite: pytest.Pytester) -> None:
    result = run(suite, "--latency-budget-ms=1")
    result.assert_outcomes(passed=2, failed=2, skipped=1, warnings=2)
    result.stdout.re_match_lines(
        [r".*4 tokens / 8-token prompt: median latency \d+\.\d ms over the 1 ms budget"], consecutive=False
    )
    result.stdout.re_match_lines([r".*8 tokens / 8-token prompt: median latency \d+\.\d ms over the 1 ms budget"])


def test_per_case_budget_override_applies_to_that_case_only(suite: pytest.Pytester) -> None:
    suite.path.joinpath("budgets.toml").write_text('[latency_ms]\n"t8-p8" = 1\n', encoding="utf-8")
    result = run(suite, "--budgets-file=budgets.toml")
    result.assert_outcomes(passed=3, failed=1, skipped=1, warnings=2)
    result.stdout.fnmatch_lines(["*FAILED perf_tests/test_latency.py::test_latency[[]t8-p8[]]*"])


def test_budget_override_for_an_unknown_case_is_a_usage_error(suite: pytest.Pytester) -> None:
    suite.path.joinpath("budgets.toml").write_text('[latency_ms]\n"t99-p8" = 1\n', encoding="utf-8")
    result = run(suite, "--budgets-file=budgets.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--budgets-file*names unknown case(s) t99-p8; cases in this run: t4-p8, t8-p8"])


def test_a_slow_request_trips_the_circuit_breaker(suite: pytest.Pytester) -> None:
    # every 3rd call sleeps 60 ms more; the breaker is set at 40 ms
    result = run(suite, "--model=prefill_ms=2,token_ms=0.5,spike_ms=60,slow_every=3", "--breaker-ms=40")
    result.stdout.re_match_lines([r".*slowest request \d+\.\d ms would trip the 40 ms circuit breaker"])
    assert result.parseoutcomes()["failed"] >= 2


def test_slow_model_load_fails_the_load_test(suite: pytest.Pytester) -> None:
    result = run(suite, "--model=load_s=0.3", "--load-budget-s=0.1")
    result.assert_outcomes(passed=3, failed=1, skipped=1, warnings=2)
    result.stdout.re_match_lines([r".*model load took 0\.\d\d s, over the 0\.1 s budget"])


def test_update_baselines_then_a_slower_engine_regresses_and_the_same_speed_passes(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run(suite, CLOCK, "--update-baselines")
    first.assert_outcomes(passed=4, skipped=1, warnings=2)
    first.stdout.fnmatch_lines(["*baselines written: 2 case(s) to baselines/*"])
    files = list((suite.path / "baselines").rglob("*.json"))
    assert len(files) == 1
    doc = json.loads(files[0].read_text(encoding="utf-8"))
    assert doc["schema"] == "npuperf.baseline/4"
    assert doc["identity"]["model_id"] == "clocked"
    assert doc["cases"]["t8-p8"]["provenance"]["model sha256"] == "1" * 64
    assert set(doc["cases"]["t8-p8"]["noise"]) == {"latency_ms", "ttft_ms", "tpot_ms"}
    assert sorted(doc["cases"]) == ["t4-p8", "t8-p8"]
    assert [len(g) for g in doc["cases"]["t8-p8"]["samples"]["latency_ms"]] == [3, 3]  # two passes of 3

    same = run(suite, CLOCK, *GENEROUS)  # this checks the wiring, not the noise
    same.assert_outcomes(passed=5)

    monkeypatch.setenv("NPUPERF_FAKE_SLOWDOWN", "2.5")
    slower = run(suite, CLOCK)
    slower.assert_outcomes(passed=2, failed=3)
    slower.stdout.re_match_lines(
        [
            r".*4 tokens / 8-token prompt: median latency [\d.]+ ms vs baseline [\d.]+ ms \(\+\d+\.\d%.*"
            r"REGRESSED \(confirmed on 2 re-runs; first run \+\d+\.\d%\)"
        ]
    )


def test_a_passing_burst_is_not_confirmed_on_re_run(suite: pytest.Pytester) -> None:
    model = "--model=prefill_ms=2,token_ms=0.5"
    run(suite, CLOCK, model, "--update-baselines").assert_outcomes(passed=4, skipped=1, warnings=2)
    # calls 1-2 are the cold call and warm-up; 3-5 the first measurement of t4-p8
    burst = run(
        suite, CLOCK, "--model=prefill_ms=2,token_ms=0.5,burst_from=3,burst_to=6,burst=3", "-rA", "--grid-tolerance=0.5"
    )
    burst.assert_outcomes(passed=5)
    burst.stdout.fnmatch_lines(["*first run looked regressed (+*%), not confirmed on re-run 1*"])


def test_a_slowdown_under_the_absolute_floor_is_not_a_regression(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(suite, CLOCK, "--update-baselines").assert_outcomes(passed=4, skipped=1, warnings=2)
    monkeypatch.setenv("NPUPERF_FAKE_SLOWDOWN", "2.5")
    result = run(suite, CLOCK, "--min-regression-ms=1000", "--grid-tolerance=2")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["*median latency*per request is within the 1000 ms floor: OK*"])
    # TPOT counts what it adds over the tokens after the first
    result.stdout.fnmatch_lines(["*8 tokens*median TPOT*ms (7 tokens) per request is within the 1000 ms floor: OK*"])


def test_update_baselines_reports_but_does_not_fail_on_regression(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(suite, CLOCK, "--update-baselines").assert_outcomes(passed=4, skipped=1, warnings=2)
    monkeypatch.setenv("NPUPERF_FAKE_SLOWDOWN", "2.5")
    accept = run(suite, CLOCK, "--update-baselines")
    accept.assert_outcomes(passed=5)
    accept.stdout.fnmatch_lines(["*not enforced: accepting new baselines*"])
    run(suite, CLOCK, *GENEROUS).assert_outcomes(passed=5)  # the slower numbers are now the baseline


def test_require_baseline_fails_cases_without_one(suite: pytest.Pytester) -> None:
    result = run(suite, "--require-baseline")
    result.assert_outcomes(passed=2, failed=2, skipped=1)
    result.stdout.fnmatch_lines(["*no baseline for latency*a baseline is required (--require-baseline)*"])


def test_corrupt_baseline_is_reported_with_its_path_and_never_overwritten(suite: pytest.Pytester) -> None:
    run(suite, "--update-baselines")
    (path,) = (suite.path / "baselines").rglob("*.json")
    path.write_text('{"schema": "npuperf.baseline/1", "key": ', encoding="utf-8")
    result = run(suite)
    result.stdout.fnmatch_lines([f"*{path.name}: not valid JSON (line 1*"])
    assert result.parseoutcomes()["errors"] == 3  # 2 cases + the grid test
    assert path.read_text(encoding="utf-8") == '{"schema": "npuperf.baseline/1", "key": '


@pytest.mark.parametrize("content", ['{"schema": "npuperf.baseline/1", "key": ', '{"schema": "npuperf.baseline/99"}'])
def test_re_recording_over_an_unreadable_baseline_keeps_it_beside_the_new_one(
    suite: pytest.Pytester, content: str
) -> None:
    run(suite, "--update-baselines")
    (path,) = (suite.path / "baselines").rglob("*.json")
    path.write_text(content, encoding="utf-8")
    result = run(suite, "--update-baselines")
    assert result.ret == 0
    (kept,) = path.parent.glob(f"{path.name}.unreadable-*")
    assert kept.read_text(encoding="utf-8") == content
    result.stdout.fnmatch_lines(
        ["*baseline unreadable, to be replaced by this recording: *", f"*kept as *{kept.name}*"]
    )
    assert run(suite).ret == 0  # the new file is a readable baseline


def test_unknown_schema_version_is_rejected_by_name(suite: pytest.Pytester) -> None:
    run(suite, "--update-baselines")
    (path,) = (suite.path / "baselines").rglob("*.json")
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["schema"] = "npuperf.baseline/99"
    path.write_text(json.dumps(doc), encoding="utf-8")
    result = run(suite)
    result.stdout.fnmatch_lines(["*baseline schema 'npuperf.baseline/99' is not supported*npuperf.baseline/1*"])


def test_a_baseline_for_another_device_is_not_compared_and_is_named(suite: pytest.Pytester) -> None:
    run(suite, "--update-baselines")
    (path,) = (suite.path / "baselines").rglob("*.json")
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["identity"]["device"]["cpu"] = "Snapdragon X Elite"
    foreign = suite.path / "baselines" / "other-device" / "fake.json"
    foreign.parent.mkdir()
    foreign.write_text(json.dumps(doc), encoding="utf-8")
    path.unlink()
    result = run(suite)
    result.assert_outcomes(passed=4, skipped=1, warnings=2)
    result.stdout.fnmatch_lines(["*near miss: other-device/fake.json differs in device.cpu: Snapdragon X Elite -> *"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--token-budgets=8,eight"],
            "*--token-budgets: 'eight' is not an integer; expected a comma list like 8,16,32*",
        ),
        (["--prompt-lengths=0"], "*--prompt-lengths: 0 is below 1; expected integers >= 1*"),
        (["--repetitions=ten"], "*--repetitions: 'ten' is not an integer; expected an integer >= 1*"),
        (
            ["--latency-budget-ms=-5"],
            "*--latency-budget-ms: '-5' is out of range; expected a positive number of mi*",
        ),
        (
            ["--tolerance=ten"],
            "*--tolerance: 'ten' is not a number; expected a fraction from 0 to 10, like 0.10*",
        ),
        (["--team-prompts=hola"], "*--team-prompts: unknown prompt 'hola'; expected 'none' or a comma list of*"),
        (
            ["--engine=nope"],
            "*--engine: unknown engine 'nope'; known engines: fake, fake-clock, fake-proc, genie, http, missing-runtime, ort-genai*",  # noqa: E501
        ),
        (["--budgets-file=missing.toml"], "*--budgets-file: cannot read*missing.toml*"),
    ],
)
def test_bad_options_are_usage_errors_naming_option_value_and_accepted(
    suite: pytest.Pytester, args: list[str], message: str
) -> None:
    result = run(suite, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_missing_runtime_skips_with_reason_and_install_command(suite: pytest.Pytester) -> None:
    result = run(suite, "--engine=missing-runtime", "-rs")
    result.assert_outcomes(skipped=5)
    result.stdout.fnmatch_lines(["*cannot import fake_runtime; install it with: pip install fake-runtime*"])


def test_missing_model_folder_errors_naming_the_path(suite: pytest.Pytester) -> None:
    result = run(suite, "--engine=ort-genai", "--model=models/not-there")
    assert result.parseoutcomes()["errors"] == 5
    result.stdout.fnmatch_lines(["*model folder '*models/not-there' does not exist*"])


def test_early_stop_is_reported_and_per_token_metrics_use_the_real_count(suite: pytest.Pytester) -> None:
    result = run(suite, "--model=stop_after=5")
    result.assert_outcomes(passed=4, skipped=1, warnings=2)
    result.stdout.fnmatch_lines(["t8-p8 *5 *", "*t8-p8: 3 repetition(s) stopped before the budget*"])


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_report_and_json_results_show_every_case(suite: pytest.Pytester) -> None:
    result = run(suite, "--html=reports/r.html", "--self-contained-html")
    result.assert_outcomes(passed=4, skipped=1, warnings=2)
    html = (suite.path / "reports" / "r.html").read_text(encoding="utf-8")
    parser = _Cells()
    parser.feed(html)
    text = " ".join(parser.text)
    assert "npuperf latency report" in text
    assert 'id="npuperf-banner"' in html
    assert "2 cases" in text
    for header in ("Median ms", "p90 ms", "TTFT ms", "TPOT ms", "Decode tok/s", "vs baseline", "Verdict"):
        assert header in html
    assert html.count("<svg") >= 1
    assert "t4-p8" in html
    assert "t8-p8" in html
    blob = re.search(r'data-jsonblob="([^"]*)"', html)
    assert blob is not None
    assert "col-npuperf_median" in blob.group(1)
    # the environment table names the engine under test, not just the machine
    environment = json.loads(html_unescape(blob.group(1)))["environment"]
    assert (environment["Engine"], environment["Model"], environment["Provider"]) == ("fake", "sleepy", "sleep")
    assert environment["Runtime versions"] == "fake 1"

    doc = json.loads((suite.path / "reports" / "results.json").read_text(encoding="utf-8"))
    assert doc["schema"] == "npuperf.results/1"
    assert [c["id"] for c in doc["cases"]] == ["t4-p8", "t8-p8"]
    case = doc["cases"][1]
    assert len(case["samples"]["latency_ms"]) == 3
    assert case["tokens_generated"] == [8, 8]
    assert {c["name"] for c in case["checks"]} == {
        "latency budget",
        "circuit breaker",
        "latency vs baseline",
        "TTFT vs baseline",
        "TPOT vs baseline",
    }
    assert doc["environment"]["Engine"] == "fake"
    assert doc["session"]["load_s"] >= 0


def test_canary_slowdown_is_caught_against_accepted_baselines(suite: pytest.Pytester) -> None:
    run(suite, "--update-baselines").assert_outcomes(passed=4, skipped=1, warnings=2)
    result = run(suite, "--inject-slowdown=1.0")
    result.assert_outcomes(passed=2, failed=3)
    result.stdout.fnmatch_lines(["*whole grid (2 cases): median latency ratio +*REGRESSED (confirmed on re-run*"])
    doc = json.loads((suite.path / "reports" / "results.json").read_text(encoding="utf-8"))
    assert doc["environment"]["Fault injection"].startswith("canary: every call and every token slowed by 100%")


def test_canary_cannot_be_accepted_as_a_baseline(suite: pytest.Pytester) -> None:
    result = run(suite, "--inject-slowdown=0.1", "--update-baselines")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--inject-slowdown: 0.1 with --update-baselines would accept*"])


def test_fail_inconclusive_fails_a_case_with_too_few_samples(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = ("--repetitions=1", "--confirm-runs=0")
    run(suite, *one, "--update-baselines").assert_outcomes(passed=4, skipped=1, warnings=2)
    monkeypatch.setenv("NPUPERF_FAKE_SLOWDOWN", "2.5")
    relaxed = run(suite, *one, "--grid-tolerance=5")
    relaxed.assert_outcomes(passed=5)
    relaxed.stdout.fnmatch_lines(["*INCONCLUSIVE*sample(s) cannot show it (need 3): INCONCLUSIVE*"])
    strict = run(suite, *one, "--grid-tolerance=5", "--fail-inconclusive")
    strict.assert_outcomes(passed=3, failed=2)
    strict.stdout.fnmatch_lines(["*(--fail-inconclusive is set)*"])


def test_v1_baseline_file_is_compared_with_tolerance_only_and_says_how_to_upgrade(suite: pytest.Pytester) -> None:
    run(suite, "--update-baselines")
    (path,) = (suite.path / "baselines").rglob("*.json")
    doc = json.loads(path.read_text(encoding="utf-8"))
    first = next(iter(doc["cases"].values()))["provenance"]
    key = {
        **doc.pop("identity"),
        "model_sha256": first["model sha256"],
        "versions": {k.removeprefix("version "): v for k, v in first.items() if k.startswith("version ")},
    }
    doc.update(schema="npuperf.baseline/1", key=key)
    for case in doc["cases"].values():
        del case["noise"], case["provenance"]
        case["samples"] = {m: [x for g in groups for x in g] for m, groups in case["samples"].items()}  # v1: one list
    path.write_text(json.dumps(doc), encoding="utf-8")
    result = run(suite, *GENEROUS)
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["*is npuperf.baseline/1: no noise floor*re-record with --update-baselines*"])


def test_help_exits_0_and_lists_every_option_with_its_ini_name(suite: pytest.Pytester) -> None:
    """argparse %-formats help texts: a literal "(0.10 = 10%)" once crashed `pytest --help`."""
    from npuperf.settings import OPTIONS

    result = suite.runpytest("perf_tests", "--help")
    assert result.ret == 0, result.stderr.str()
    text = " ".join(result.stdout.str().split())  # argparse wraps long help lines
    assert "npuperf latency regression suite:" in text
    missing = [o.flag for o in OPTIONS if f"{o.flag}=" not in text and f"{o.flag} " not in text]
    unnamed = [o.ini for o in OPTIONS if f"(ini: {o.ini};" not in text]
    assert not missing, f"options missing from --help: {missing}"
    assert not unnamed, f"ini names missing from --help: {unnamed}"
    assert "(0.10 = 10%)" in text
