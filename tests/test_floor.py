"""The decode floor's arithmetic against hand-computed values, and the shape twins' presets.

Qwen2-0.5B (config.json: hidden 896, 14 heads of 64, 2 KV heads, MLP 4864, 24 layers,
vocab 151 936, tied embeddings), per layer:
    q 896x896 + 896 bias = 803 712; k and v 2 x (896x128 + 128) = 229 632; o 896x896 = 802 816;
    MLP 3 x 896 x 4864 = 13 074 432; two norms 1 792                         -> 14 912 384
    x 24 = 357 897 216; final norm 896; LM head 151 936 x 896 = 136 134 656  -> 494 032 768
Qwen2-7B (hidden 3584, 28 heads of 128, 4 KV heads, MLP 18 944, 28 layers, vocab 152 064):
    q 12 848 640; k and v 3 671 040; o 12 845 056; MLP 203 685 888; norms 7 168 -> 233 057 792
    x 28 = 6 525 618 176; final norm 3 584; LM head 544 997 376             -> 7 070 619 136
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ROOT
from npuperf.cli import main
from npuperf.cli.floor import preset_config
from npuperf.models import floor, twins

X_ELITE = 8448e6 * 16  # bytes/s: LPDDR5x-8448 on a 128-bit bus


def shape(preset: str) -> floor.Shape:
    return floor.Shape.from_config(preset_config(preset))


def test_decode_parameters_of_known_shapes() -> None:
    assert shape("qwen2-0.5b").decode_params() == 494_032_768
    assert shape("qwen2-7b").decode_params() == 7_070_619_136


def test_twin_parameter_counts_match_the_published_models() -> None:
    # Qwen2-0.5B 0.49 B, Qwen2.5-1.5B 1.54 B, Qwen2-7B 7.62 B (tied: the embedding once)
    assert twins.TWINS["qwen2-0.5b"].params() == 494_032_768
    assert round(twins.TWINS["qwen2.5-1.5b"].params() / 1e9, 2) == 1.54
    assert twins.TWINS["qwen2-7b"].params() == 7_070_619_136 + 544_997_376  # + the untied embedding table


def test_kv_bytes_per_position() -> None:
    assert shape("qwen2-0.5b").kv_bytes_per_position(4) == 2 * 24 * 2 * 64 * 4 == 24_576
    assert shape("qwen2-7b").kv_bytes_per_position(2) == 2 * 28 * 4 * 128 * 2 == 57_344


def test_qwen2_0_5b_floor_at_30_gb_per_s() -> None:
    f = floor.from_config(preset_config("qwen2-0.5b"), "int4", floor.Bandwidth(30.0, "given"))
    assert f.weight_bytes == 494_032_768 * 4.5 / 8 == 277_893_432
    # (277 893 432 + 12 288 x 100) / 30e9 s
    assert f.step_ms(100) == pytest.approx((277_893_432 + 12_288 * 100) / 30e9 * 1e3)
    assert f.step_ms(100) == pytest.approx(9.304, abs=1e-3)


def test_qwen2_7b_on_an_x_elite_cannot_give_32_tokens_in_500_ms() -> None:
    f = floor.from_config(preset_config("qwen2-7b"), "int4", floor.SOCS["x-elite"])
    assert f.bandwidth.gb_per_s * 1e9 == X_ELITE
    weights = 7_070_619_136 * 4.5 / 8  # 3 977 223 264 bytes
    prefill = (weights + 57_344 * 64) / X_ELITE * 1e3  # 29.451 ms
    step = (weights + 57_344 * (64 + 32 / 2)) / X_ELITE * 1e3  # 29.458 ms at the mean context
    assert f.latency_ms(64, 32) == pytest.approx(prefill + 31 * step)
    assert f.latency_ms(64, 32) == pytest.approx(942.66, abs=0.01)
    text = f.arithmetic(64, 32, 500)
    assert text.startswith("infeasible: 32 tokens after a 64-token prompt need at least 29.5 ms")
    assert "31 x 29.5 ms" in text
    assert text.endswith("= 942.7 ms > 500 ms")
    n = f.max_tokens(500, 64)
    assert f.latency_ms(64, n) <= 500 < f.latency_ms(64, n + 1)
    assert n == 16


def test_efficiency_is_floor_over_tpot() -> None:
    assert floor.efficiency(10.0, 40.0) == 0.25
    assert floor.efficiency(10.0, None) is None


def test_the_embedded_model_floor_counts_one_embedding_row() -> None:
    pytest.importorskip("onnx", reason="counting initializers needs onnx (requirements-synth.txt)")
    f = floor.of_folder(ROOT / "models" / "tiny-qwen2", floor.Bandwidth(10.0, "given"))
    data = (ROOT / "models" / "tiny-qwen2" / "model.onnx.data").stat().st_size
    table = 2048 * 256 * 4  # the fp32 embedding table the builder writes
    assert f.weight_bytes < data  # not the whole file: the table is read one row at a time
    assert f.weight_bytes >= data - table
    assert f.kv_bytes_per_position == 2 * 4 * 2 * 64 * 4  # float32 past_key_values


def test_without_onnx_the_floor_estimates_from_the_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(floor, "onnx_read_bytes", lambda model: None)
    weights, source = floor.read_bytes_of_folder(ROOT / "models" / "tiny-qwen2")
    files = sum(p.stat().st_size for p in (ROOT / "models" / "tiny-qwen2").glob("model.onnx*"))
    assert weights == files - 2048 * 256 * 4
    assert "estimated" in source


def test_a_genie_bundle_counts_its_context_binaries() -> None:
    config = ROOT / "models" / "genie-tiny" / "genie_config.json"
    f = floor.for_model("genie", config, floor.Bandwidth(10.0, "given"))
    bins = json.loads(config.read_text(encoding="utf-8"))["dialog"]["engine"]["model"]["binary"]["ctx-bins"]
    assert f.weight_bytes == sum((config.parent / b).stat().st_size for b in bins)
    assert "no config.json" in f.kv_source


def test_bandwidth_choices() -> None:
    assert floor.bandwidth_of("x-plus").gb_per_s == pytest.approx(135.168)
    assert floor.bandwidth_of("100").gb_per_s == 100
    with pytest.raises(floor.FloorError, match="'fast'"):
        floor.bandwidth_of("fast")
    assert floor.soc_of("Snapdragon(R) X Elite - X1E78100 - Qualcomm(R) Oryon(TM) CPU") == "x-elite"
    assert floor.soc_of("Snapdragon(R) X Plus - X1P64100") == "x-plus"
    assert floor.soc_of("AMD EPYC") is None
    probed = floor.choose_bandwidth("auto", npu=True, cpu="AMD EPYC")  # no known SoC: measured
    assert probed.source.startswith("probe")
    assert floor.choose_bandwidth("auto", npu=True, cpu="Snapdragon X Elite X1E80100") is floor.SOCS["x-elite"]
    unknown = floor.choose_bandwidth("auto", npu=True, cpu="Snapdragon(R) 8cx Gen 3 @ 3.0 GHz")
    assert "'Snapdragon(R) 8cx Gen 3 @ 3.0 GHz' is not in the SoC table" in unknown.source
    assert unknown.source.endswith("the floor is too high; pass --memory-bandwidth <GB/s> for this SoC")
    cpu_engine = floor.choose_bandwidth("auto", npu=False, cpu="Snapdragon(R) 8cx Gen 3 @ 3.0 GHz")
    assert "SoC table" not in cpu_engine.source  # the CPU engines run on one thread: the probe is their figure


def test_round_trip_through_the_results_json() -> None:
    f = floor.from_config(preset_config("qwen2-0.5b"), "int4", floor.Bandwidth(30.0, "given"))
    assert floor.Floor.from_dict(json.loads(json.dumps(f.describe()))) == f


# ----- the command ---------------------------------------------------------------------------


def test_floor_command_says_7b_on_x_elite_is_infeasible(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["floor", "--preset", "qwen2-7b", "--bandwidth", "x-elite", "--prompt", "64", "--tokens", "32"]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "infeasible: 32 tokens after a 64-token prompt" in out
    assert "the floor allows at most 16 new tokens within 500 ms" in out
    assert main([*args[:-1], "8"]) == 0  # 8 tokens fit: 29.5 + 7 x 29.5 ms


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["floor", "--preset", "llama"], "--preset 'llama': expected one of"),
        (["floor"], "name a --preset or a --model"),
        (["floor", "--preset", "qwen2-7b", "--bandwidth", "fast"], "'fast': expected 'probe'"),
        (["floor", "--preset", "qwen2-7b", "--precision", "int3"], "precision 'int3'"),
        (["floor", "--model", "nowhere"], "nowhere: not a model folder"),
        (["floor", "--preset", "qwen2-7b", "--tokens", "0"], "--tokens: 0 is out of range"),
        (["floor", "--preset", "qwen2-7b", "--budget-ms", "nan"], "--budget-ms: nan is out of range"),
    ],
)
def test_floor_command_errors(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err


# ----- twins -----------------------------------------------------------------------------------


def test_a_preset_too_big_for_the_machine_is_refused_with_the_arithmetic() -> None:
    why = twins.fits_here(twins.TWINS["qwen2-7b"], 24 * 2**30)
    assert why is not None
    assert "7.62 B parameters are 28.4 GiB as random fp32 weights" in why
    assert "this machine has 24.0 GiB" in why
    assert twins.fits_here(twins.TWINS["qwen2-0.5b"], 24 * 2**30) is None


def test_twins_live_in_the_cache_keyed_by_preset_and_builder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NPUPERF_CACHE", str(tmp_path))
    assert twins.location("qwen2-0.5b") == tmp_path / f"b{twins.BUILDER}" / "synthetic-qwen2-0.5b"
    assert twins.resolve("models/tiny-qwen2") == "models/tiny-qwen2"  # not a twin: as given
    built = twins.location("qwen2-0.5b")
    built.mkdir(parents=True)
    (built / "genai_config.json").write_text("{}", encoding="utf-8")
    (built / "npuperf_model.json").write_text("{}", encoding="utf-8")
    twins._list_files(built)
    monkeypatch.setattr(twins, "_build", lambda *a: pytest.fail("a whole cached twin must not be rebuilt"))
    assert twins.resolve("synthetic:qwen2-0.5b") == str(built)  # reused: nothing is built
    with pytest.raises(twins.TwinError, match="unknown shape-twin preset 'llama'"):
        twins.resolve("synthetic:llama")


def test_an_unbuildable_twin_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NPUPERF_CACHE", str(tmp_path))
    monkeypatch.setattr(twins, "_memory", lambda: 24 * 2**30)
    with pytest.raises(twins.TwinError, match="qwen2-7b cannot be built on this machine"):
        twins.ensure("qwen2-7b", log=lambda line: None)
    assert not any(tmp_path.iterdir())
