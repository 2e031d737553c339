"""A baseline catches the changes a team makes: a re-exported model at the same path, a
runtime upgrade. Compared and named (identity match), or not compared at all (strict)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from conftest import MODEL, ROOT, copy_suite, needs_onnx, small_suite_ini

CLOCK_INI = small_suite_ini(repetitions=6)

REAL_INI = """
[pytest]
addopts = -p npuperf.plugin -p no:cacheprovider -p no:html -m "not npu and not service"
# about provenance, not the machine: tests/test_plugin_machine.py covers the machine checks
npuperf_max_background_cores = 100
npuperf_max_noise_floor = 9
npuperf_noise_k = 0
npuperf_engine = ort-genai
npuperf_model = models/tiny-qwen2
npuperf_token_budgets = 16,32
npuperf_prompt_lengths = 8
npuperf_team_prompts = none
npuperf_repetitions = 6
npuperf_warmup = 2
npuperf_confirm_pause_s = 0
filterwarnings = default
"""


def test_a_runtime_upgrade_that_is_slower_regresses_and_names_the_version(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite = copy_suite(pytester, monkeypatch, CLOCK_INI)
    suite.runpytest("perf_tests", "--update-baselines").assert_outcomes(passed=4, skipped=1, warnings=2)

    monkeypatch.setenv("NPUPERF_FAKE_VERSION", "2")
    monkeypatch.setenv("NPUPERF_FAKE_SLOWDOWN", "1.5")
    upgraded = suite.runpytest("perf_tests")
    upgraded.assert_outcomes(passed=2, failed=3)
    upgraded.stdout.re_match_lines(
        [
            r".*8 tokens / 8-token prompt: median latency .*REGRESSED.*; changed since the baseline: fake 1 -> 2$",
            r".*whole grid .*REGRESSED.*; changed since the baseline: fake 1 -> 2$",
            r"changed since the baseline: fake 1 -> 2$",
        ]
    )

    strict = suite.runpytest("perf_tests", "--baseline-match=strict")
    strict.assert_outcomes(passed=4, skipped=1, warnings=2)
    strict.stdout.fnmatch_lines(
        [
            "*no accepted baseline at baselines/*.json with this model, runtimes and configs (--baseline-match strict)",
            "*near miss: *.json differs in fake 1 -> 2",
        ]
    )


def test_the_same_runtime_and_model_say_nothing_changed_but_the_commit(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite = copy_suite(pytester, monkeypatch, CLOCK_INI)
    suite.runpytest("perf_tests", "--update-baselines").assert_outcomes(passed=4, skipped=1, warnings=2)
    again = suite.runpytest("perf_tests", "--baseline-match=strict")
    again.assert_outcomes(passed=5)
    assert "changed since the baseline: fake" not in again.stdout.str()


@pytest.mark.slow
@needs_onnx
def test_a_model_re_exported_at_the_same_path_regresses_with_its_hash_change(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The embedded model, then the same model rebuilt with fp32 weights at the same path
    (slower per request: 2.4x when this was written, +16..+35% on one noisy CI run): real files, real runtime."""
    suite = copy_suite(pytester, monkeypatch, REAL_INI)
    model = suite.path / "models" / "tiny-qwen2"
    shutil.copytree(MODEL, model)
    recorded = suite.runpytest("perf_tests", "--update-baselines")
    recorded.assert_outcomes(passed=4, skipped=1, warnings=2)

    rebuild = [sys.executable, "-m", "npuperf", "synth", "tiny", "--out", str(model), "--force", "--precision", "fp32"]
    proc = subprocess.run(rebuild, cwd=ROOT, capture_output=True, text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]

    slower = suite.runpytest("perf_tests")
    assert slower.ret == pytest.ExitCode.TESTS_FAILED
    # which check confirms it (a case's latency, TPOT or TTFT, or the whole grid) depends on the
    # machine's noise: once, latency stayed under the 1 ms floor while TPOT (+31.8%) and the
    # grid (+35.4%) were confirmed; any of them, with the hash change named, is the behaviour
    slower.stdout.re_match_lines(
        [
            r".*(tokens / 8-token prompt: median (latency|TPOT|TTFT)|whole grid) .*\+\d+\.\d%.*REGRESSED.*; "
            r"changed since the baseline: model sha256 1ae3c977 -> [0-9a-f]{8}"
        ]
    )

    strict = suite.runpytest("perf_tests", "--baseline-match=strict")
    strict.assert_outcomes(passed=4, skipped=1, warnings=2)
    strict.stdout.fnmatch_lines(["*near miss: *tiny-qwen2*.json differs in model sha256 1ae3c977 -> *"])
