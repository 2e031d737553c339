""".github/workflows/nightly-perf.yml: what the nightly must do, kept true as the repo changes.

Its schema and security checks are run by .ci/run (check-jsonschema's vendored GitHub
workflow schema, zizmor offline); here, when those tools are installed, and always the
contract: the jobs the issue asks for, the files the suite writes are the files uploaded,
nothing from an expression is pasted into a script.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from conftest import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "nightly-perf.yml"


@pytest.fixture(scope="module")
def flow() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return doc


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job["steps"])


def test_runs_nightly_and_by_hand(flow: dict[str, Any]) -> None:
    triggers = flow[True]  # YAML 1.1 reads the key "on" as True
    assert set(triggers) == {"schedule", "workflow_dispatch"}  # never on pull requests: self-hosted laptops
    assert triggers["schedule"][0]["cron"]


def test_npu_job_is_a_matrix_over_runner_labels(flow: dict[str, Any]) -> None:
    job = flow["jobs"]["npu"]
    assert job["runs-on"][:3] == ["self-hosted", "Windows", "ARM64"]
    assert job["runs-on"][3] == "${{ matrix.device }}"
    assert "vars.NPUPERF_DEVICES" in job["strategy"]["matrix"]["device"]
    suite = next(s for s in steps(job) if s.get("name") == "Latency suite on the NPU")["run"]
    assert "--engine genie" in suite
    assert "--require-baseline" in suite
    assert "vars.NPUPERF_GENIE_BUNDLE" in job["env"]["GENIE_BUNDLE"]


def test_hosted_job_runs_the_embedded_model(flow: dict[str, Any]) -> None:
    job = flow["jobs"]["embedded"]
    assert job["runs-on"] == "windows-11-arm"
    suite = next(s for s in steps(job) if s.get("name") == "Latency suite on the embedded model")["run"]
    assert "--engine" not in suite  # the default: the embedded model


@pytest.mark.parametrize("name", ["npu", "embedded", "night"])
def test_python_312_on_arm64_pwsh_and_pip_cache(flow: dict[str, Any], name: str) -> None:
    job = flow["jobs"][name]
    assert job["defaults"]["run"]["shell"] == "pwsh"
    setup = next(s for s in steps(job) if s.get("uses", "").startswith("actions/setup-python@"))
    assert setup["with"]["python-version"] == "3.12"
    assert setup["with"]["architecture"] == "arm64"
    assert setup["with"]["cache"] == "pip"


@pytest.mark.parametrize("name", ["npu", "embedded"])
def test_uploads_what_the_suite_writes_always_and_keeps_the_history(flow: dict[str, Any], name: str) -> None:
    ini = configparser.ConfigParser()
    ini.read(ROOT / "pytest.ini", encoding="utf-8")
    addopts = ini["pytest"]["addopts"]
    written = {
        re.search(r"--html=(\S+)", addopts).group(1),  # type: ignore[union-attr]
        re.search(r"--junitxml=(\S+)", addopts).group(1),  # type: ignore[union-attr]
        ini["pytest"]["npuperf_results_json"],
        "reports/history.sqlite",
    }
    job = flow["jobs"][name]
    upload = next(s for s in steps(job) if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()"
    assert set(upload["with"]["path"].split()) == written
    cached = [s for s in steps(job) if s.get("uses", "").startswith("actions/cache/")]
    assert {s["uses"].split("@")[0] for s in cached} == {"actions/cache/restore", "actions/cache/save"}
    save = next(s for s in cached if "save" in s["uses"])
    assert save["if"] == "always()"  # a failing night is history too
    summary = next(s for s in steps(job) if s.get("name") == "Summary")
    assert "npuperf summary" in summary["run"]
    assert "$env:GITHUB_STEP_SUMMARY" in summary["run"]


def test_night_puts_the_devices_side_by_side(flow: dict[str, Any]) -> None:
    job = flow["jobs"]["night"]
    assert set(job["needs"]) == {"npu", "embedded"}
    assert job["if"] == "always()"
    run = next(s for s in steps(job) if s.get("name") == "Side by side")["run"]
    assert "--html" in run


def test_no_expression_is_pasted_into_a_script(flow: dict[str, Any]) -> None:
    for job in flow["jobs"].values():
        for step in steps(job):
            assert "${{" not in step.get("run", ""), step  # values reach scripts through env


def test_actions_are_pinned_to_commits(flow: dict[str, Any]) -> None:
    for job in flow["jobs"].values():
        for step in steps(job):
            if "uses" in step:
                assert re.fullmatch(r"[\w./-]+@[0-9a-f]{40}", step["uses"]), step["uses"]


def test_workflow_schema_and_zizmor_when_installed() -> None:
    ran = 0
    schema = shutil.which("check-jsonschema")
    if schema:
        cmd = [schema, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        ran += 1
    zizmor = shutil.which("zizmor")
    if zizmor:
        proc = subprocess.run([zizmor, "--offline", str(WORKFLOW)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        ran += 1
    if not ran:
        pytest.skip("check-jsonschema and zizmor are not installed (pip install -r requirements-dev.txt)")
