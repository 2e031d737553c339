"""Contract tests of the genie engine against tests/fake_qai_appbuilder.py.

qai-appbuilder has no x86_64 wheel: these tests pin the engine to the real module's
signatures and behaviour as the fake reproduces them. The engine runs for real only
on a Snapdragon device.
"""

from __future__ import annotations

import gc
import json
import shutil
import sys
import threading
from pathlib import Path

import fake_qai_appbuilder as fake
import pytest

from npuperf.engines.base import EngineError, EngineOptions, EngineUnavailable, ModelError, create_engine
from npuperf.engines.genie.config import inspect_config
from npuperf.engines.genie.engine import BackendChoice, GenieEngine
from npuperf.engines.genie.profile import CLOCK, init_time_ms, parse_profile
from npuperf.measure import Case, measure_case
from npuperf.prompts import corpus_prompt, team_prompt

DATA = Path(__file__).parent / "data" / "genie"


@pytest.fixture
def appbuilder(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The fake installed as ``qai_appbuilder``, with fresh simulation settings."""
    fake.reset()
    monkeypatch.setitem(sys.modules, "qai_appbuilder", fake)
    yield fake
    fake.reset()


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    target = tmp_path / "Qwen2.0-7B-SSD"
    shutil.copytree(DATA / "bundle", target)
    return target / "genie_config.json"


@pytest.fixture
def engine(appbuilder, bundle: Path):  # type: ignore[no-untyped-def]
    e = GenieEngine(bundle)
    e.load()
    yield e
    e.close()


def test_contract_load_reads_the_bundle_and_names_what_runs(
    appbuilder, bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths in the config must not depend on the cwd
    engine = create_engine("genie", EngineOptions(model=str(bundle)))
    engine.load()
    info = engine.info
    assert (info.engine, info.provider, info.model_id) == ("genie", "QnnHtp", "Qwen2.0-7B-SSD")
    assert info.versions == {"qai-appbuilder": fake.__version__}
    assert info.details["dialog_type"] == "ssd-q1"
    assert info.details["context_size"] == "4096"
    assert info.details["perf_profile"] == "burst"
    assert info.details["device_init_ms"] == "1500.0"  # GenieDialog_create init-time from the profile
    assert len(info.model_sha256) == 64
    assert len(appbuilder.LIVE) == 1
    assert Path.cwd() == tmp_path


def test_contract_query_takes_ttft_and_tpot_from_the_profile_and_latency_from_the_client(engine: GenieEngine) -> None:
    prompt = team_prompt(engine.tokenizer, "greeting-zh")
    g = engine.generate(prompt.text, 8)
    assert g.new_tokens == 8
    assert g.stop_reason == "budget"
    assert g.complete
    assert g.prompt_tokens == prompt.tokens
    assert g.clock == CLOCK
    profile = parse_profile(engine.backend.ctx.GetProfile())  # what the runtime reported for this query
    # text to text: TTFT is SetParams (setup, client clock) plus Genie's own TTFT (device clock)
    assert g.ttft_ms == pytest.approx(g.phases["setup"] + profile.ttft_ms, abs=1e-3)
    assert g.tpot_ms == pytest.approx(profile.tpot_ms, abs=1e-3)
    assert list(g.phases) == ["setup", "prefill", "decode", "finish"]
    assert sum(g.phases.values()) == pytest.approx(g.latency_ms, abs=1e-3)
    assert g.device["device_generated_tokens"] == 8
    # latency is the client's wall time around Query, which includes the device's work
    assert g.latency_ms == pytest.approx(g.device["client_latency_ms"])
    assert g.latency_ms >= profile.ttft_ms
    assert g.device["client_first_text_ms"] >= 0
    assert g.text == "好" * 8  # everything the callback delivered, in order
    assert engine.info.context_length == 4096
    assert [prompt.text] == fake.QUERIES


@pytest.mark.parametrize("budget", [1, 4, 16])
def test_contract_token_budget_goes_through_setparams_as_strings(engine: GenieEngine, budget: int) -> None:
    g = engine.generate("你好", budget)
    assert engine.backend.ctx._max_length == budget
    assert g.new_tokens == budget
    assert (g.tpot_ms is None) == (budget == 1)


def test_contract_setparams_rejects_non_strings_like_pybind(
    appbuilder, bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(bundle.parent)
    ctx = fake.GenieContext(str(bundle))  # the fake holds the contract the engine must meet
    with pytest.raises(TypeError):
        ctx.SetParams(8, "0.8", "1", "1.0")  # type: ignore[arg-type]


def test_contract_early_stop_reports_the_real_count(appbuilder, engine: GenieEngine) -> None:
    appbuilder.SIM.eos_after = 3
    g = engine.generate("你好", 16)
    assert (g.new_tokens, g.requested_new_tokens, g.stop_reason, g.complete) == (3, 16, "eos", False)
    assert g.tpot_ms == pytest.approx(g.device["device_generation_ms"] / 2, abs=1e-3)
    result = measure_case(engine, Case(16, team_prompt(engine.tokenizer, "greeting-zh")), repetitions=2)
    assert result.stopped_early == 2
    assert result.tokens_generated == (3, 3)


def test_contract_an_exception_from_on_token_stops_the_dialog_and_is_raised_after_query(
    appbuilder, engine: GenieEngine
) -> None:
    class Gone(Exception):
        pass

    calls = []

    def hang_up() -> None:  # the server's ClientGone after the second piece of text
        calls.append(1)
        if len(calls) == 2:
            raise Gone("client left")

    with pytest.raises(Gone, match="client left"):
        engine.generate("你好", 500, on_token=hang_up)
    assert len(calls) == 2  # not called again once it raised
    assert engine.generate("你好", 4).new_tokens == 4  # the dialog still works


def test_contract_speculative_overshoot_is_kept_and_flagged(appbuilder, engine: GenieEngine) -> None:
    appbuilder.SIM.accept = 3  # a self-speculative pass accepts several tokens
    g = engine.generate("你好", 8)
    assert g.new_tokens == 10
    assert g.over_budget
    assert g.stop_reason == "budget"


def test_contract_one_query_at_a_time(appbuilder, engine: GenieEngine) -> None:
    appbuilder.SIM.token_us = 2000
    errors: list[BaseException] = []

    def query() -> None:
        try:
            engine.generate("你好", 8)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=query) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(fake.QUERIES) == 3


def test_contract_the_fake_itself_refuses_concurrent_queries(
    appbuilder, bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the engine's lock, a second Query while one runs is an error (as on device).
    monkeypatch.chdir(bundle.parent)
    appbuilder.SIM.token_us = 2000
    ctx = fake.GenieContext(str(bundle))
    ctx.SetParams("32", "0.8", "1", "1.0")
    started = threading.Event()

    def first() -> None:
        ctx.Query("你好", lambda _t: started.set() or True)

    t = threading.Thread(target=first)
    t.start()
    started.wait(5)
    with pytest.raises(RuntimeError, match="not thread-safe"):
        ctx.Query("你好", lambda _t: True)
    t.join()


def test_contract_close_releases_the_context(appbuilder, bundle: Path) -> None:
    engine = GenieEngine(bundle)
    engine.load()
    assert len(appbuilder.LIVE) == 1
    engine.close()
    gc.collect()
    assert appbuilder.LIVE == []
    with pytest.raises(EngineError, match="before load"):
        engine.generate("你好", 4)


def test_contract_missing_runtime_is_unavailable_with_install_hint(
    monkeypatch: pytest.MonkeyPatch, bundle: Path
) -> None:
    monkeypatch.setitem(sys.modules, "qai_appbuilder", None)
    with pytest.raises(
        EngineUnavailable, match=r"install it with: pip install qai-appbuilder \(wheels: Windows on ARM64"
    ):
        GenieEngine(bundle, BackendChoice(backend="appbuilder")).load()  # auto would take the C API


def test_contract_constructor_failure_is_a_model_error_naming_the_config(appbuilder, bundle: Path) -> None:
    appbuilder.SIM.fail_init = "Failed to create the Genie Dialog."
    with pytest.raises(ModelError, match=r"GenieContext\('.*genie_config.json'\) failed: Failed to create the Genie"):
        GenieEngine(bundle).load()
    assert appbuilder.LIVE == []


def test_contract_missing_context_binary_is_named_before_genie_runs(appbuilder, bundle: Path) -> None:
    (bundle.parent / "qwen2_7b_ssd_2_of_2.serialized.bin").unlink()
    with pytest.raises(ModelError, match=r"context binary 'qwen2_7b_ssd_2_of_2\.serialized\.bin' not found"):
        GenieEngine(bundle).load()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('{"model": {}}', "is not a Genie dialog config: no top-level 'dialog' object"),
    ],
)
def test_contract_bad_config_files_are_model_errors(appbuilder, tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "genie_config.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ModelError, match=message):
        GenieEngine(path).load()


def test_contract_a_folder_as_model_says_to_pass_the_config(appbuilder, bundle: Path) -> None:
    with pytest.raises(ModelError, match="is a folder; the genie engine takes the path of the bundle's genie_config"):
        GenieEngine(bundle.parent).load()


def test_contract_prompts_of_exact_length_use_the_bundle_tokenizer(engine: GenieEngine) -> None:
    prompt = corpus_prompt(engine.tokenizer, 64)
    assert engine.backend.ctx.TokenLength(prompt.text) == 64


# ----- profile parsing and config inspection (pure) --------------------------------------


RECORDED = DATA / "profile-genie-tiny-simulator.json"  # GenieProfile_getJsonData of a real run (test_genie_real.py)


def _recorded() -> dict:  # type: ignore[type-arg]
    return json.loads(RECORDED.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def test_profile_parsing_takes_the_last_query_event() -> None:
    last = _recorded()["components"][0]["events"][-1]
    p = parse_profile(RECORDED.read_text(encoding="utf-8"))
    assert (p.prompt_tokens, p.generated_tokens) == (last["num-prompt-tokens"]["value"], 16)
    assert p.ttft_ms == pytest.approx(last["time-to-first-token"]["value"] / 1000)
    assert p.tpot_ms == pytest.approx(last["token-generation-time"]["value"] / 1000 / 15)
    assert p.prompt_tps == pytest.approx(last["prompt-processing-rate"]["value"])
    assert p.generation_tps == pytest.approx(last["token-generation-rate"]["value"])


def test_a_one_token_query_counts_one_token() -> None:
    # Genie reports num-generated-tokens 0 for a query of one token (measured: test_genie_real.py)
    doc = _recorded()
    doc["components"][0]["events"][-1]["num-generated-tokens"]["value"] = 0
    doc["components"][0]["events"][-1]["token-generation-time"]["value"] = 0
    p = parse_profile(json.dumps(doc))
    assert (p.generated_tokens, p.tpot_ms) == (1, None)


def test_init_time_comes_from_the_create_event() -> None:
    create = _recorded()["components"][0]["events"][0]
    assert init_time_ms(RECORDED.read_text(encoding="utf-8")) == pytest.approx(create["init-time"]["value"] / 1000)
    assert init_time_ms('{"components": []}') is None
    assert init_time_ms("not json") is None


def test_profile_units_in_milliseconds_are_converted() -> None:
    doc = _recorded()
    doc["components"][0]["events"][-1]["time-to-first-token"] = {"value": 174.2, "unit": "ms"}
    assert parse_profile(json.dumps(doc)).ttft_ms == pytest.approx(174.2)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda d: d["components"][0]["events"].pop() and d["components"][0]["events"].pop(),
            "no GenieDialog_query event",
        ),
        (lambda d: d["components"][0]["events"][-1].pop("time-to-first-token"), "'time-to-first-token' is missing"),
        (lambda d: d["components"][0]["events"][-1]["token-generation-time"].update(unit="cycles"), "unit 'cycles'"),
        (lambda d: d.pop("components"), "no 'components'"),
    ],
)
def test_profile_problems_are_named(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    doc = _recorded()
    mutate(doc)
    with pytest.raises(EngineError, match=message):
        parse_profile(json.dumps(doc))


def test_profile_that_is_not_json_is_named() -> None:
    with pytest.raises(EngineError, match="Genie profile is not JSON"):
        parse_profile("")


def test_config_inspection_reads_backend_dialog_context_and_perf_profile(bundle: Path) -> None:
    c = inspect_config(bundle)
    assert (c.backend_type, c.dialog_type, c.context_size, c.perf_profile) == ("QnnHtp", "ssd-q1", 4096, "burst")
    assert c.on_htp
    assert c.speculative
    assert c.problems == ()
    assert [p.name for p in c.ctx_bins] == ["qwen2_7b_ssd_1_of_2.serialized.bin", "qwen2_7b_ssd_2_of_2.serialized.bin"]


def test_config_inspection_sees_a_non_burst_profile_and_a_missing_extensions_file(bundle: Path) -> None:
    ext = bundle.parent / "htp_backend_ext_config.json"
    doc = json.loads(ext.read_text(encoding="utf-8"))
    doc["devices"][0]["cores"][0]["perf_profile"] = "sustained_high_performance"
    ext.write_text(json.dumps(doc), encoding="utf-8")
    assert inspect_config(bundle).perf_profile == "sustained_high_performance"
    ext.unlink()
    c = inspect_config(bundle)
    assert c.perf_profile is None
    assert any("backend extensions file 'htp_backend_ext_config.json' not found" in p for p in c.problems)
