"""The physical floor of decode latency: bytes one decode step must read / memory bandwidth.

Decoding one token runs the whole decoder once. Batch 1, every weight matrix is read from
memory once per token (the embedding table is the exception: one row is looked up), and
so is the KV cache of every position so far. Memory bandwidth, not arithmetic, bounds it:

    floor(context) = (weight bytes read + KV bytes per position x context) / bandwidth

A measured TPOT can only be above it; ``efficiency`` = floor / TPOT says how close an engine
gets (100% = at the limit). Prefill reads the weights at least once as well, so a request of
n new tokens cannot take less than ``(1 + (n - 1)) passes`` plus the KV reads:
``latency_floor``. When a budget is below that, no engine on that memory can meet it.

Bytes come from the model's own files when it has them (the ONNX initializers, counted once
at build into the twin's manifest or with the ``onnx`` package; else the weight files less an
fp32 embedding table), else from its config.json and a weight precision (a model that cannot
be built here, e.g. Qwen2-7B). Bandwidth comes from a short probe of this machine's memory
(one thread, as the embedded models run) or from the table of Snapdragon SoCs below.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GB = 1e9


class FloorError(ValueError):
    """The floor cannot be computed for this model; the message says what is missing."""


@dataclass(frozen=True)
class Shape:
    """A decoder's shape, as its config.json gives it."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied: bool

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> Shape:
        """From a Hugging Face config.json (Qwen2, Llama and alike)."""
        try:
            hidden, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
            shape = cls(
                layers=int(cfg["num_hidden_layers"]),
                hidden=hidden,
                heads=heads,
                kv_heads=int(cfg.get("num_key_value_heads") or heads),
                head_dim=int(cfg.get("head_dim") or hidden // heads),
                intermediate=int(cfg["intermediate_size"]),
                vocab=int(cfg["vocab_size"]),
                tied=bool(cfg.get("tie_word_embeddings", False)),
            )
        except (KeyError, TypeError, ValueError, ZeroDivisionError, AttributeError) as exc:
            raise FloorError(f"config.json lacks a decoder shape field ({exc!r})") from exc
        bad = {k: v for k, v in vars(shape).items() if k != "tied" and v <= 0}
        if bad:
            raise FloorError(f"config.json: decoder shape fields must be positive, got {bad}")
        return shape

    def decode_params(self) -> int:
        """Parameters one decode step reads: every layer (q/k/v with their biases, o, the gated
        MLP, two norms), the final norm and the LM head; the embedding table not (one row)."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        attention = self.hidden * q + q + 2 * (self.hidden * kv + kv) + q * self.hidden
        layer = attention + 3 * self.hidden * self.intermediate + 2 * self.hidden
        return self.layers * layer + self.hidden + self.vocab * self.hidden

    def kv_bytes_per_position(self, bytes_per_value: float) -> float:
        """Keys and values of one position, every layer."""
        return 2 * self.layers * self.kv_heads * self.head_dim * bytes_per_value


@dataclass(frozen=True)
class Bandwidth:
    gb_per_s: float
    source: str  # "probe: ..." or the SoC and where its figure comes from


# Peak DRAM bandwidth = transfer rate x bus width (128 bit = 16 bytes). Qualcomm's published
# memory specifications; the X Elite/X Plus launch parts (X1E-78/80/84, X1P-42..66) run
# LPDDR5x at 8448 MT/s, the X1E-00-1DE at 8533 MT/s. Sources: Qualcomm's Snapdragon X Elite /
# X Plus product briefs as reported at launch (e.g. windowsreport/mspoweruser 2023-10: "LPDDR5x,
# 8533 MT/s, 136 GB/s, 8 channels x 16 bit"; winaero 2024-04: X Plus "8448 MT/s, 135 GB/s").
SOCS: dict[str, Bandwidth] = {
    "x-elite": Bandwidth(8448e6 * 16 / GB, "Snapdragon X Elite (X1E-78/80/84): LPDDR5x-8448 x 128 bit, Qualcomm spec"),
    "x-elite-1de": Bandwidth(8533e6 * 16 / GB, "Snapdragon X Elite X1E-00-1DE: LPDDR5x-8533 x 128 bit, Qualcomm spec"),
    "x-plus": Bandwidth(8448e6 * 16 / GB, "Snapdragon X Plus (X1P): LPDDR5x-8448 x 128 bit, Qualcomm spec"),
}

# bits per weight of a precision, with its quantization scales (int4 in blocks of 32 with an
# fp16 scale: 4 + 16/32)
PRECISION_BITS = {"int4": 4.5, "int8": 8.25, "fp16": 16.0, "bf16": 16.0, "fp32": 32.0}


@dataclass(frozen=True)
class Floor:
    """What one decode step must read, and at what bandwidth."""

    weight_bytes: float
    kv_bytes_per_position: float
    bandwidth: Bandwidth
    weights_source: str
    kv_source: str

    def step_ms(self, context: float) -> float:
        """The floor of one decode step with ``context`` positions in the KV cache."""
        return (self.weight_bytes + self.kv_bytes_per_position * context) / (self.bandwidth.gb_per_s * GB) * 1e3

    def decode_ms(self, prompt_tokens: int, new_tokens: int) -> float:
        """Per token, over a generation: the floor at the mean context its decode steps see."""
        return self.step_ms(prompt_tokens + new_tokens / 2)

    def latency_ms(self, prompt_tokens: int, new_tokens: int) -> float:
        """No request of ``new_tokens`` can be faster: prefill reads the weights once (and the
        prompt's KV is written), then n - 1 decode steps."""
        prefill = self.step_ms(prompt_tokens)
        return prefill + max(new_tokens - 1, 0) * self.decode_ms(prompt_tokens, new_tokens)

    def max_tokens(self, budget_ms: float, prompt_tokens: int) -> int:
        """The most new tokens the floor allows within ``budget_ms`` (0: not even the prefill pass)."""
        prefill = self.step_ms(prompt_tokens)
        if prefill > budget_ms:
            return 0
        lo, hi = 1, 2  # latency grows with n: double, then bisect
        while self.latency_ms(prompt_tokens, hi) <= budget_ms and hi < 10_000_000:
            lo, hi = hi, hi * 2
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if self.latency_ms(prompt_tokens, mid) <= budget_ms else (lo, mid)
        return lo

    def arithmetic(self, prompt_tokens: int, new_tokens: int, budget_ms: float) -> str:
        """Why a budget is (in)feasible, with every number."""
        step = self.decode_ms(prompt_tokens, new_tokens)
        prefill = self.step_ms(prompt_tokens)
        total = self.latency_ms(prompt_tokens, new_tokens)
        verdict = "infeasible" if total > budget_ms else "feasible"
        weights, kv = size(self.weight_bytes), size(self.kv_bytes_per_position * (prompt_tokens + new_tokens / 2))
        return (
            f"{verdict}: {new_tokens} tokens after a {prompt_tokens}-token prompt need at least "
            f"{prefill:.3g} ms (prefill: one pass over {weights} of weights) + "
            f"{max(new_tokens - 1, 0)} x {step:.3g} ms (decode floor: {weights} + KV {kv} at "
            f"{self.bandwidth.gb_per_s:.3g} GB/s) = {total:.4g} ms "
            f"{'>' if total > budget_ms else '<='} {budget_ms:g} ms"
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Floor:
        """Back from ``describe()`` (the results JSON's session.floor)."""
        return cls(
            weight_bytes=float(d["weight_bytes"]),
            kv_bytes_per_position=float(d["kv_bytes_per_position"]),
            bandwidth=Bandwidth(float(d["bandwidth_gb_per_s"]), str(d["bandwidth_source"])),
            weights_source=str(d["weights_source"]),
            kv_source=str(d["kv_source"]),
        )

    def describe(self) -> dict[str, Any]:
        return {
            "weight_bytes": self.weight_bytes,
            "kv_bytes_per_position": self.kv_bytes_per_position,
            "bandwidth_gb_per_s": self.bandwidth.gb_per_s,
            "bandwidth_source": self.bandwidth.source,
            "weights_source": self.weights_source,
            "kv_source": self.kv_source,
        }


def size(n_bytes: float) -> str:
    """Bytes for a reader: 3.98 GB, 310 MB, 4.6 kB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.3g} {unit}"
    return f"{n_bytes:.0f} B"


def efficiency(floor_ms: float, tpot_ms: float | None) -> float | None:
    """floor / measured TPOT: 1.0 is the physical limit."""
    if not tpot_ms or tpot_ms <= 0:
        return None
    return floor_ms / tpot_ms


def from_config(cfg: Mapping[str, Any], precision: str, bandwidth: Bandwidth, kv_bytes: float = 2.0) -> Floor:
    """The floor of a model known only by its config.json and a weight precision."""
    if precision not in PRECISION_BITS:
        raise FloorError(f"precision {precision!r}: expected one of {', '.join(PRECISION_BITS)}")
    shape = Shape.from_config(cfg)
    bits = PRECISION_BITS[precision]
    return Floor(
        weight_bytes=shape.decode_params() * bits / 8,
        kv_bytes_per_position=shape.kv_bytes_per_position(kv_bytes),
        bandwidth=bandwidth,
        weights_source=(
            f"config.json: {shape.decode_params() / 1e9:.3f} B parameters read per step x {bits:g} bits ({precision})"
        ),
        kv_source=(
            f"config.json: 2 x {shape.layers} layers x {shape.kv_heads} KV heads x {shape.head_dim} x "
            f"{kv_bytes:g} bytes"
        ),
    )


# ----- from a model folder ---------------------------------------------------------------------


def _json(path: Path) -> Any:
    """A JSON file of the model, or FloorError naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FloorError(f"{path}: not there") from None
    except (OSError, ValueError) as exc:  # ValueError: bad UTF-8, bad JSON
        raise FloorError(f"{path}: not readable JSON ({exc})") from exc


def _onnx_graph(model: Path) -> Any:
    """The ONNX graph (weights left on disk), or FloorError naming the file; ImportError without onnx."""
    import onnx

    if not model.is_file():
        raise FloorError(f"{model}: the model file genai_config.json names is not there")
    try:
        return onnx.load(str(model), load_external_data=False).graph
    except Exception as exc:  # protobuf's DecodeError is no ValueError; any failure here is a bad file
        raise FloorError(f"{model}: not a readable ONNX model ({exc.__class__.__name__}: {exc})") from exc


def onnx_read_bytes(model: Path) -> tuple[int, int] | None:
    """(bytes one step reads, bytes of the gathered embedding tables) from the ONNX initializers;
    None without the onnx package."""
    try:
        graph = _onnx_graph(model)
    except ImportError:
        return None
    gathered = {n.input[0] for n in graph.node if n.op_type == "Gather"}
    total = embedding = 0
    for init in graph.initializer:
        ext = {e.key: e.value for e in init.external_data}
        size = int(ext["length"]) if "length" in ext else len(init.raw_data)
        if init.name in gathered and len(init.dims) == 2:
            row = size // max(int(init.dims[0]), 1)
            embedding += size
            total += row  # a lookup reads one row
        else:
            total += size
    return total, embedding


def _kv_value_bytes(model: Path) -> float:
    """Bytes per cached value: the past_key_values inputs' element type (float32 on onnxruntime-genai's CPU)."""
    try:
        graph = _onnx_graph(model)
    except ImportError:
        return 4.0
    sizes = {1: 4.0, 10: 2.0, 16: 2.0, 2: 1.0, 3: 1.0}  # float, float16, bfloat16, uint8, int8
    for inp in graph.input:
        if inp.name.startswith("past_key_values"):
            return sizes.get(inp.type.tensor_type.elem_type, 4.0)
    return 4.0


def read_bytes_of_folder(folder: Path) -> tuple[float, str]:
    """Weight bytes one decode step reads, and how they were counted, for an onnxruntime-genai folder."""
    manifest = folder / "npuperf_model.json"
    if manifest.is_file():
        doc = _json(manifest)
        counted = doc.get("decode_read_bytes") if isinstance(doc, dict) else None
        if isinstance(counted, int) and not isinstance(counted, bool) and counted > 0:
            return float(counted), "the model's ONNX initializers (counted at build; the embedding table: one row)"
    cfg = _genai_model(folder)
    onnx_file = folder / cfg["decoder"]["filename"]
    counted_now = onnx_read_bytes(onnx_file)
    if counted_now is not None:
        return float(counted_now[0]), "the model's ONNX initializers (the embedding table: one row)"
    files = sum(p.stat().st_size for p in folder.iterdir() if p.name.startswith(onnx_file.name))
    table = int(cfg["vocab_size"]) * int(cfg["decoder"]["hidden_size"]) * 4
    return float(max(files - table, 0)), (
        f"the weight files ({files / 1e6:.1f} MB) less an fp32 embedding table ({table / 1e6:.1f} MB), as "
        "onnxruntime-genai's builder stores it (estimated: pip install onnx to count the initializers)"
    )


def _genai_model(folder: Path) -> dict[str, Any]:
    """genai_config.json's "model" section with the decoder fields the floor reads, or FloorError."""
    genai = folder / "genai_config.json"
    if not genai.is_file():
        raise FloorError(f"{folder}: no genai_config.json (the floor reads the model's own files)")
    doc = _json(genai)
    try:
        cfg = doc["model"]
        decoder = cfg["decoder"]
        if not isinstance(decoder["filename"], str) or not decoder["filename"]:
            raise TypeError("model.decoder.filename is not a file name")
        for key in ("num_hidden_layers", "num_key_value_heads", "head_size"):
            if int(decoder[key]) <= 0:
                raise ValueError(f"model.decoder.{key} must be positive, got {decoder[key]!r}")
    except (KeyError, TypeError, ValueError) as exc:
        raise FloorError(f"{genai}: not an onnxruntime-genai decoder config ({exc!r})") from exc
    return dict(cfg)


def of_folder(folder: Path, bandwidth: Bandwidth) -> Floor:
    """The floor of an onnxruntime-genai model folder (genai_config.json and its ONNX files)."""
    decoder = _genai_model(folder)["decoder"]
    weights, source = read_bytes_of_folder(folder)
    value = _kv_value_bytes(folder / decoder["filename"])
    layers, kv_heads, head = (
        int(decoder["num_hidden_layers"]),
        int(decoder["num_key_value_heads"]),
        int(decoder["head_size"]),
    )
    return Floor(
        weight_bytes=weights,
        kv_bytes_per_position=2 * layers * kv_heads * head * value,
        bandwidth=bandwidth,
        weights_source=source,
        kv_source=f"genai_config.json: 2 x {layers} layers x {kv_heads} KV heads x {head} x {value:g} bytes",
    )


# ----- bandwidth -----------------------------------------------------------------------------


def probe(mib: int = 256, repeats: int = 5) -> Bandwidth:
    """This machine's memory read bandwidth, one thread: the best of ``repeats`` sums over a
    ``mib`` MiB array (far beyond any cache), so a busy moment costs a repeat, not the figure."""
    import numpy as np

    data = np.ones(mib * 2**20 // 8, dtype=np.float64)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        data.sum()
        best = min(best, time.perf_counter() - start)
    return Bandwidth(data.nbytes / best / GB, f"probe: one thread summing {mib} MiB, best of {repeats}")


def bandwidth_of(choice: str) -> Bandwidth:
    """``probe``, a key of SOCS, or a number of GB/s."""
    if choice == "probe":
        return probe()
    if choice in SOCS:
        return SOCS[choice]
    try:
        value = float(choice)
    except ValueError:
        raise FloorError(
            f"memory bandwidth {choice!r}: expected 'probe', a SoC ({', '.join(SOCS)}) or GB/s as a number"
        ) from None
    if not 0 < value < 10_000:
        raise FloorError(f"memory bandwidth {choice!r}: expected GB/s between 0 and 10000")
    return Bandwidth(value, f"given: {value:g} GB/s")


def soc_of(cpu: str) -> str | None:
    """The SOCS key of a Snapdragon named by its CPU brand string, e.g. 'Snapdragon(R) X Elite - X1E78100'."""
    name = cpu.lower().replace("-", "").replace(" ", "")
    if "x1e001de" in name:
        return "x-elite-1de"
    if "xelite" in name or "x1e" in name:
        return "x-elite"
    if "xplus" in name or "x1p" in name:
        return "x-plus"
    return None


def choose_bandwidth(choice: str, npu: bool, cpu: str) -> Bandwidth:
    """--memory-bandwidth: 'auto' takes the SoC's figure for an NPU engine on a known Snapdragon
    (the NPU reads the same DRAM at its peak), else measures this machine (one thread, as the CPU
    engines run)."""
    if choice != "auto":
        return bandwidth_of(choice)
    soc = soc_of(cpu) if npu else None
    if soc is not None:
        return SOCS[soc]
    measured = probe()
    if npu and ("snapdragon" in cpu.lower() or "qualcomm" in cpu.lower()):
        # a Snapdragon not in the table: one CPU thread reads DRAM far slower than the NPU can,
        # so this floor is too high; say so rather than call a reachable budget impossible
        return Bandwidth(
            measured.gb_per_s,
            f"{measured.source}; {cpu.strip()!r} is not in the SoC table, so this is one CPU thread's figure, "
            "below what the NPU reads: the floor is too high; pass --memory-bandwidth <GB/s> for this SoC",
        )
    return measured


def of_genie(config: Path, bandwidth: Bandwidth) -> Floor:
    """The floor of a Genie bundle: its context binaries are the weights (and the graphs: an upper
    bound of what a step reads); the KV cache from a config.json beside it, when there is one."""
    doc = _json(config)
    try:
        bins = doc["dialog"]["engine"]["model"]["binary"]["ctx-bins"]
        if not isinstance(bins, list) or not bins or not all(isinstance(b, str) and b for b in bins):
            raise TypeError(f"ctx-bins is {bins!r}, not a list of file names")
    except (KeyError, TypeError) as exc:
        raise FloorError(f"{config}: no context binaries to count ({exc!r})") from exc
    paths = [Path(b) if Path(b).is_absolute() else config.parent / b for b in bins]
    missing = [b for b, p in zip(bins, paths, strict=True) if not p.is_file()]
    if missing:
        raise FloorError(f"{config}: context binaries not there (beside it): {', '.join(missing)}")
    weights = sum(p.stat().st_size for p in paths)
    if weights == 0:
        raise FloorError(f"{config}: its context binaries are empty files")
    hf = config.parent / "config.json"
    if hf.is_file():
        cfg = _json(hf)
        try:
            shape = Shape.from_config(cfg)
        except FloorError as exc:
            raise FloorError(f"{hf}: {exc}") from exc
        kv, kv_source = shape.kv_bytes_per_position(2.0), "config.json beside the bundle, fp16 values (assumed)"
    else:
        kv, kv_source = 0.0, "not counted: no config.json beside genie_config.json (the floor is a little low)"
    return Floor(
        weight_bytes=float(weights),
        kv_bytes_per_position=kv,
        bandwidth=bandwidth,
        weights_source=f"{len(paths)} context binaries ({weights / 1e6:.1f} MB; graphs included: an upper bound)",
        kv_source=kv_source,
    )


def for_model(engine: str, model: Path, bandwidth: Bandwidth) -> Floor:
    """The floor of the model under test, from its files (FloorError when it has none to read)."""
    if engine == "genie":
        return of_genie(model, bandwidth)
    if model.is_dir():
        return of_folder(model, bandwidth)
    raise FloorError(f"{model}: not a model folder (genai_config.json and its ONNX files) to read the floor from")
