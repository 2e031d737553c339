"""Worker processes: the job and its events, the worker process itself, the runners, the orders."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import fakes
from conftest import MODEL
from npuperf.engines.base import EngineOptions, factory_path, load_factory, register_engine
from npuperf.measure import CaseSpec
from npuperf.workers import protocol
from npuperf.workers.pool import Assembler, LocalRunner, ProcessRunner, WorkerError, rotations, worker_env
from npuperf.workers.protocol import Job, ProtocolError

SPECS = (CaseSpec(4, prompt_tokens=8), CaseSpec(8, prompt_tokens=8))


def job(engine: str = "fake-proc", model: str = "prefill_ms=1,token_ms=0.2", **kw: object) -> Job:
    fields = {
        "engine": engine,
        "factory": factory_path(engine) or "",
        "model": model,
        "provider": "cpu",
        "extra": {},
        "specs": SPECS,
        "repetitions": 3,
        "warmup": 1,
        "warm_tokens": 4,
        "warm_prompts": (8,),
        "process": 7,
        **kw,
    }
    return Job(**fields)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _fakes() -> None:
    fakes.register()


def test_a_job_crosses_as_json_whole() -> None:
    sent = job(context_check=(8, 8, ("greeting-zh",)), side="A", inject_slowdown=0.1)
    assert Job.from_json(sent.to_json()) == sent


@pytest.mark.parametrize(
    "text", ["{", "[]", '{"engine": "x"}', json.dumps({**json.loads(job().to_json()), "specs": [{}]})]
)
def test_a_broken_job_is_a_protocol_error(text: str) -> None:
    with pytest.raises(ProtocolError, match="not a worker job"):
        Job.from_json(text)


def test_a_lambda_factory_has_no_path_and_a_module_function_has_one() -> None:
    assert factory_path("fake") is None  # a lambda
    assert factory_path("fake-proc") == "fakes:sleeping"
    assert factory_path("ort-genai") == "npuperf.engines.ort_genai:create"
    assert load_factory("fakes:sleeping") is fakes.sleeping

    def nested(options: EngineOptions) -> fakes.SleepEngine:
        return fakes.SleepEngine()

    register_engine("nested", nested)
    assert factory_path("nested") is None


def test_rotations_put_every_case_first_once_in_a_while() -> None:
    specs = [CaseSpec(n, prompt_tokens=8) for n in (1, 2, 3, 4, 5)]
    orders = rotations(specs, 5)
    assert [o[0].new_tokens for o in orders] == [1, 2, 3, 4, 5]
    assert all(sorted(s.new_tokens for s in o) == [1, 2, 3, 4, 5] for o in orders)
    assert rotations(specs, 1) == [tuple(specs)]


def test_a_worker_process_measures_its_cases_and_reports_them_tagged() -> None:
    run = ProcessRunner().run(job(), lambda _m: None)
    assert run.index == 7
    assert run.info.engine == "fake"
    assert run.load_s is not None
    assert run.cold is not None
    assert run.cold.requested_new_tokens == 4
    assert sorted(run.cases) == ["t4-p8", "t8-p8"]
    case = run.cases["t8-p8"]
    assert case.processes == (7, 7, 7)
    assert set(case.background) == {7}
    assert all(g.new_tokens == 8 for g in case.generations)


def test_the_same_job_in_this_process_gives_the_same_shape_of_answer() -> None:
    runner = LocalRunner(lambda: fakes.sleeping(EngineOptions(model="prefill_ms=1,token_ms=0.2")))
    first = runner.run(job(), lambda _m: None)
    again = runner.run(job(process=8), lambda _m: None)  # the engine is loaded once
    assert first.load_s is not None
    assert again.load_s is None
    assert again.info == first.info
    assert again.cases["t4-p8"].processes == (8, 8, 8)
    runner.close()


def test_a_worker_that_cannot_make_its_engine_says_why() -> None:
    with pytest.raises(WorkerError) as info:
        ProcessRunner().run(job(engine="missing-runtime", factory="fakes:_missing"), lambda _m: None)
    assert info.value.kind == "unavailable"
    assert info.value.install == "pip install fake-runtime"


def test_a_model_that_does_not_load_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(WorkerError) as info:
        ProcessRunner().run(
            job(engine="ort-genai", factory="npuperf.engines.ort_genai:create", model=str(tmp_path / "nothing")),
            lambda _m: None,
        )
    assert info.value.kind == "model"
    assert "nothing" in str(info.value)


def test_a_grid_over_the_context_is_a_usage_error() -> None:
    with pytest.raises(WorkerError) as info:
        ProcessRunner().run(
            job(engine="ort-genai", factory="npuperf.engines.ort_genai:create", model=str(MODEL),
                context_check=(5000, 8, ())),
            lambda _m: None,
        )  # fmt: skip
    assert info.value.kind == "usage"
    assert "--prompt-lengths: a 5000-token prompt does not fit" in str(info.value)


def test_a_worker_that_dies_names_its_last_words(tmp_path: Path) -> None:
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\necho 'segfault in libGenie' >&2\nexit 139\n", encoding="utf-8")
    python.chmod(0o755)
    with pytest.raises(WorkerError, match="exited with status 139 before it finished: segfault in libGenie"):
        ProcessRunner(str(python)).run(job(), lambda _m: None)


def test_an_interpreter_that_does_not_exist_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(WorkerError, match="cannot start a worker with"):
        ProcessRunner(str(tmp_path / "no-python")).run(job(), lambda _m: None)


@pytest.mark.parametrize(
    "event",
    [{"event": "what"}, {"event": "case", "id": "x"}, {"event": "loaded", "info": {}}],
    ids=["unknown", "case-without-data", "loaded-without-info"],
)
def test_a_malformed_event_is_a_protocol_error(event: dict[str, object]) -> None:
    with pytest.raises(ProtocolError):
        Assembler(job()).feed(event, lambda _m: None)


def test_an_error_event_is_the_workers_error() -> None:
    a = Assembler(job())
    a.feed({"event": "error", "kind": "model", "message": "no model.onnx"}, lambda _m: None)
    with pytest.raises(WorkerError, match=r"no model\.onnx"):
        a.result()


def test_a_worker_of_another_environment_gets_npuperf_but_not_this_interpreters_packages() -> None:
    paths = worker_env()["PYTHONPATH"].split(":")
    assert paths[0] == str(Path(protocol.__file__).resolve().parents[2])
    assert not any(p.startswith(sys.prefix) and "site-packages" in p for p in paths)
    assert str(Path(fakes.__file__).resolve().parent) in paths  # a conftest's import path: its engines
