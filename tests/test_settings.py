from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT
from npuperf.settings import OPTIONS, Option, SettingsError, load_budget_overrides, resolve


def settings(tmp_path: Path, **given: str):  # type: ignore[no-untyped-def]
    def get(opt: Option) -> str:
        return given.get(opt.dest.removeprefix("npuperf_"), opt.default)

    return resolve(get, tmp_path)


def test_defaults_are_the_teams_numbers(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert s.token_budgets == (8, 16, 32, 64)
    assert s.prompt_lengths == (8, 64, 256)
    assert (s.latency_budget_ms, s.breaker_ms, s.load_budget_s) == (500.0, 2000.0, 20.0)
    assert (s.processes, s.repetitions) == (5, 4)
    assert s.tolerance == pytest.approx(0.10)
    assert s.team_prompts == ("greeting-zh", "analyze-zh")


def test_every_option_has_an_ini_key_with_the_prefix() -> None:
    assert all(opt.ini.startswith("npuperf_") for opt in OPTIONS)
    assert len({opt.flag for opt in OPTIONS}) == len(OPTIONS)


def test_overrides_file_sets_one_case(tmp_path: Path) -> None:
    (tmp_path / "b.toml").write_text('[latency_ms]\n"t64-p256" = 800\n', encoding="utf-8")
    s = settings(tmp_path, budgets_file="b.toml")
    assert s.budget_for("t64-p256") == 800.0
    assert s.budget_for("t8-p8") == 500.0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[latency]\nx = 1\n", r"unknown table\(s\) \['latency'\]"),
        ('[latency_ms]\n"t8-p8" = -1\n', "expected a positive number of milliseconds"),
        ('[latency_ms]\n"t8-p8" = "fast"\n', "expected a positive number of milliseconds"),
        ("latency_ms = 3\n", "must be a table"),
        ("[latency_ms\n", "is not valid TOML"),
    ],
)
def test_bad_overrides_files(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "b.toml").write_text(content, encoding="utf-8")
    with pytest.raises(SettingsError, match=message):
        load_budget_overrides(tmp_path / "b.toml")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"token_budgets": ""}, "--token-budgets: '' is empty"),
        ({"token_budgets": "8,8"}, "--token-budgets: '8,8' repeats a value"),
        ({"warmup": "-1"}, "--warmup: -1 is below 0"),
        ({"breaker_ms": "inf"}, "--breaker-ms: 'inf' is out of range; expected a positive number of milliseconds"),
        ({"load_budget_s": "soon"}, "--load-budget-s: 'soon' is not a number"),
        ({"update_baselines": "maybe"}, "--update-baselines: 'maybe' is not a boolean"),
        ({"tolerance": "20"}, "--tolerance: '20' is out of range; expected a fraction from 0 to 10"),
        ({"engine": " "}, "--engine: empty"),
        ({"alpha": "1"}, "--alpha: '1' is out of range; expected a probability between 0 and 1"),
        ({"grid_tolerance": "x"}, "--grid-tolerance: 'x' is not a number"),
        ({"noise_k": "-2"}, "--noise-k: '-2' is out of range"),
        ({"inject_slowdown": "11"}, "--inject-slowdown: '11' is out of range; expected a fraction from 0"),
        ({"confirm_runs": "-1"}, "--confirm-runs: -1 is below 0"),
        ({"ep": "dml"}, "--ep: 'dml' is not accepted; expected one of cpu, qnn"),
        ({"htp_perf_mode": "turbo"}, "--htp-perf-mode: 'turbo' is not accepted; expected one of burst, balanced"),
        ({"qnn_runs": "0"}, "--qnn-runs: 0 is below 1"),
        ({"confirm_pause_s": "x"}, "--confirm-pause-s: 'x' is not a number"),
        (
            {"min_regression_ms": "-1"},
            "--min-regression-ms: '-1' is out of range; expected a number of mi",
        ),
    ],
)
def test_bad_values_name_option_value_and_accepted(tmp_path: Path, given: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        settings(tmp_path, **given)


def test_team_prompts_none(tmp_path: Path) -> None:
    assert settings(tmp_path, team_prompts="none").team_prompts == ()


def test_npu_defaults_and_qnn_model_none(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert (s.provider, s.htp_perf_mode, s.qnn_model, s.qnn_runs) == ("cpu", "burst", "models/qnn-block/model.onnx", 5)
    assert settings(tmp_path, qnn_model="none").qnn_model == ""
    assert settings(tmp_path, ep="QNN").provider == "qnn"


def test_each_setting_is_declared_once_by_one_option() -> None:
    """A Settings field is filled by exactly one OPTIONS row (or derived from them)."""
    from npuperf.settings import DERIVED, field_names

    names = [opt.name for opt in OPTIONS]
    assert len(names) == len(set(names))
    assert set(names) | set(DERIVED) == field_names()


def test_a_default_parses_to_the_declared_kind(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert (s.fail_inconclusive, s.http_stream, s.baselines_dir, s.qnn_cache_dir) == (False, True, "baselines", "")
    assert settings(tmp_path, baselines_dir=" ").baselines_dir == "baselines"


def test_every_option_is_documented_with_its_ini_key_and_default() -> None:
    """docs/options.md is the option reference: a new option is not done until it is there."""
    page = (ROOT / "docs" / "options.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(): line for line in page.splitlines() if line.startswith("| `--")}
    for opt in OPTIONS:
        row = next((r for flags, r in rows.items() if f"`{opt.flag}`" in flags), None)
        assert row is not None, f"{opt.flag} is not in docs/options.md"
        assert f"`{opt.ini}`" in row, f"{opt.flag}: its ini key {opt.ini} is not in its row"
