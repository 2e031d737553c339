"""genie-tiny: a Qwen2-shaped decoder that Qualcomm Genie runs as a real dialog on the HTP.

``npuperf synth genie-tiny`` writes models/genie-tiny/:

- ``genie_config.json``: a ``basic`` dialog on the ``QnnHtp`` backend (greedy sampler);
- ``tokenizer.json``: byte-level (token id = byte value) plus ``<|endoftext|>`` (256);
- ``genie-tiny_qnn.bin``: the QNN context binary, compiled by ONNX Runtime's QNN execution
  provider for the HTP (the simulator on x86_64; ``--htp-arch`` / ``--soc-model`` for a device);
- ``model_qio.onnx``: the quantised model the binary was compiled from (the CPU reference runs it);
- ``npuperf_model.json``: the recipe and the versions that built it.

The graph follows the I/O contract Genie's qnn-htp engine checks (../shared/genie-x86 and
docs/npu.md): per layer ``past_key_<l>_in`` [1, kv, D, CL-1] / ``past_value_<l>_in``
[1, kv, CL-1, D] and their ``_out`` of one position, ``attention_mask`` [1, 1, 1, CL] and the
RoPE ``position_ids_cos`` / ``_sin`` [1, 1, 1, D/2] computed by Genie, ``logits`` [1, 1, V];
all natively quantised (uint16; the build drops the graph's input Q and output DQ nodes).

Each layer is a Qwen2 layer: RMSNorm, q/k/v projections with bias, RoPE (rotate-half),
grouped-query attention (4 query heads over 2 key/value heads), o projection, RMSNorm,
SwiGLU MLP; then a final RMSNorm and the LM head. The weights are random with a fixed seed,
except the embedding and LM head: the LM head is the embedding shifted by one byte, so the
greedy next token is well separated (the CPU and the HTP agree on it despite quantisation)
and ``<|endoftext|>`` is never chosen: every generation runs to its token budget.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

EOS = "<|endoftext|>"
MANIFEST = "npuperf_model.json"
CONFIG = "genie_config.json"
QIO = "model_qio.onnx"
# Quantisation of the graph I/O Genie writes and reads: (scale, zero point) of uint16.
MASK_Q = (100.0 / 65535, 65535)  # Genie writes 65535 (= 0.0: attend) or 0 (= -100: masked)
ROPE_Q = (2.0 / 65535, 32768)
KV_Q = (8.0 / 65535, 32768)


@dataclass(frozen=True)
class GenieRecipe:
    """What decides genie-tiny's shape and bytes."""

    name: str = "genie-tiny"
    layers: int = 2
    hidden: int = 64
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 176
    context: int = 512
    rope_theta: float = 1_000_000.0  # Qwen2's
    seed: int = 20261126
    calibration_steps: int = 24

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def vocab(self) -> int:
        return 257  # 256 bytes and <|endoftext|>

    @property
    def past(self) -> int:
        return self.context - 1


def io_names(recipe: GenieRecipe) -> tuple[list[str], list[str]]:
    """The graph's input and output names, in the contract's order."""
    ins = ["input_ids", "attention_mask", "position_ids_cos", "position_ids_sin"]
    outs = ["logits"]
    for layer in range(recipe.layers):
        ins += [f"past_key_{layer}_in", f"past_value_{layer}_in"]
        outs += [f"past_key_{layer}_out", f"past_value_{layer}_out"]
    return ins, outs


class _Graph:
    """Nodes and initializers of one ONNX graph, named as they are made."""

    def __init__(self, seed: int) -> None:
        import numpy as np

        self.np = np
        self.rng = np.random.default_rng(seed)
        self.nodes: list[Any] = []
        self.inits: list[Any] = []

    def const(self, name: str, value: Any) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(self.np.asarray(value), name))
        return name

    def weight(self, name: str, *shape: int, scale: float = 0.02) -> str:
        # 0.02 is Qwen2's initializer_range
        return self.const(name, (self.rng.standard_normal(shape) * scale).astype(self.np.float32))

    def node(self, op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def rms_norm(self, x: str, prefix: str, width: int) -> str:
        np = self.np
        sq = self.node("Mul", [x, x], f"{prefix}/square")
        axes = self.const(f"{prefix}.axes", np.array([-1]))
        mean = self.node("ReduceMean", [sq, axes], f"{prefix}/mean", keepdims=1)
        eps = self.node("Add", [mean, self.const(f"{prefix}.eps", np.float32(1e-6))], f"{prefix}/eps")
        normed = self.node("Div", [x, self.node("Sqrt", [eps], f"{prefix}/sqrt")], f"{prefix}/normalize")
        return self.node("Mul", [normed, self.const(f"{prefix}.weight", np.ones(width, np.float32))], f"{prefix}/scale")

    def linear(self, x: str, prefix: str, rows: int, cols: int, bias: bool) -> str:
        y = self.node("MatMul", [x, self.weight(f"{prefix}.weight", rows, cols)], f"{prefix}/matmul")
        if not bias:
            return y
        return self.node(
            "Add", [y, self.const(f"{prefix}.bias", self.np.zeros(cols, self.np.float32))], f"{prefix}/bias"
        )


def _rope(g: _Graph, x: str, prefix: str, half: int) -> str:
    """Rotate-half RoPE of [1, n, 1, D] with Genie's cos/sin of D/2."""
    np = g.np
    ax = g.const(f"{prefix}.axis", np.array([3]))
    a = g.node(
        "Slice",
        [x, g.const(f"{prefix}.s0", np.array([0])), g.const(f"{prefix}.e0", np.array([half])), ax],
        f"{prefix}/first",
    )
    b = g.node(
        "Slice",
        [x, g.const(f"{prefix}.s1", np.array([half])), g.const(f"{prefix}.e1", np.array([2 * half])), ax],
        f"{prefix}/second",
    )
    r1 = g.node(
        "Sub",
        [
            g.node("Mul", [a, "position_ids_cos"], f"{prefix}/a_cos"),
            g.node("Mul", [b, "position_ids_sin"], f"{prefix}/b_sin"),
        ],
        f"{prefix}/r1",
    )
    r2 = g.node(
        "Add",
        [
            g.node("Mul", [b, "position_ids_cos"], f"{prefix}/b_cos"),
            g.node("Mul", [a, "position_ids_sin"], f"{prefix}/a_sin"),
        ],
        f"{prefix}/r2",
    )
    return g.node("Concat", [r1, r2], f"{prefix}/rotated", axis=3)


def _attention(g: _Graph, r: GenieRecipe, x: str, layer: int) -> str:
    """One layer's grouped-query attention over the past KV and this position; returns its output."""
    np, p, d = g.np, f"layers.{layer}.attn", r.head_dim
    q = g.linear(x, f"{p}.q_proj", r.hidden, r.heads * d, bias=True)
    k = g.linear(x, f"{p}.k_proj", r.hidden, r.kv_heads * d, bias=True)
    v = g.linear(x, f"{p}.v_proj", r.hidden, r.kv_heads * d, bias=True)

    def split(t: str, n: int, name: str) -> str:  # [1, 1, n*d] -> [1, n, 1, d]
        shaped = g.node("Reshape", [t, g.const(f"{p}.{name}.shape", np.array([1, 1, n, d]))], f"{p}/{name}_split")
        return g.node("Transpose", [shaped], f"{p}/{name}_heads", perm=[0, 2, 1, 3])

    qh = _rope(g, split(q, r.heads, "q"), f"{p}/q_rope", d // 2)
    kh = _rope(g, split(k, r.kv_heads, "k"), f"{p}/k_rope", d // 2)
    vh = split(v, r.kv_heads, "v")
    k_out = g.node("Transpose", [kh], f"past_key_{layer}_out", perm=[0, 1, 3, 2])  # [1, kv, d, 1]
    v_out = g.node("Identity", [vh], f"past_value_{layer}_out")  # [1, kv, 1, d]
    k_all = g.node("Concat", [f"past_key_{layer}_in", k_out], f"{p}/k_all", axis=3)  # [1, kv, d, CL]
    v_all = g.node("Concat", [f"past_value_{layer}_in", v_out], f"{p}/v_all", axis=2)  # [1, kv, CL, d]
    group = r.heads // r.kv_heads  # each KV head serves `group` query heads
    q_grouped = g.node("Reshape", [qh, g.const(f"{p}.q_group", np.array([1, r.kv_heads, group, d]))], f"{p}/q_group")
    scores = g.node("MatMul", [q_grouped, k_all], f"{p}/scores")  # [1, kv, group, CL]
    scaled = g.node("Mul", [scores, g.const(f"{p}.scale", np.float32(1 / np.sqrt(d)))], f"{p}/scaled")
    masked = g.node("Add", [scaled, "attention_mask"], f"{p}/masked")
    probs = g.node("Softmax", [masked], f"{p}/softmax", axis=-1)
    ctx = g.node("MatMul", [probs, v_all], f"{p}/context")  # [1, kv, group, d]
    merged = g.node("Reshape", [ctx, g.const(f"{p}.merge", np.array([1, 1, r.heads * d]))], f"{p}/merge")
    return g.linear(merged, f"{p}.o_proj", r.heads * d, r.hidden, bias=False)


def float_decoder(recipe: GenieRecipe) -> Any:
    """The float ONNX graph (an ``onnx.ModelProto``) with Genie's I/O names and shapes."""
    from onnx import TensorProto, helper

    r, g = recipe, _Graph(recipe.seed)
    np = g.np
    embed = (g.rng.standard_normal((r.vocab, r.hidden)) / np.sqrt(r.hidden)).astype(np.float32)
    head = np.zeros((r.hidden, r.vocab), np.float32)
    head[:, :256] = np.roll(embed[:256], -1, axis=0).T * 4.0  # next byte = this byte + 1; never <|endoftext|>
    x = g.node("Gather", [g.const("embed_tokens", embed), "input_ids"], "embed", axis=0)  # [1, 1, H]
    for layer in range(r.layers):
        p = f"layers.{layer}"
        h = g.node("Add", [x, _attention(g, r, g.rms_norm(x, f"{p}.input_layernorm", r.hidden), layer)], f"{p}/resid1")
        n2 = g.rms_norm(h, f"{p}.post_attention_layernorm", r.hidden)
        gate = g.linear(n2, f"{p}.mlp.gate_proj", r.hidden, r.intermediate, bias=False)
        silu = g.node("Mul", [gate, g.node("Sigmoid", [gate], f"{p}/mlp/sigmoid")], f"{p}/mlp/silu")
        up = g.linear(n2, f"{p}.mlp.up_proj", r.hidden, r.intermediate, bias=False)
        act = g.node("Mul", [silu, up], f"{p}/mlp/act")
        x = g.node("Add", [h, g.linear(act, f"{p}.mlp.down_proj", r.intermediate, r.hidden, bias=False)], f"{p}/resid2")
    g.node("MatMul", [g.rms_norm(x, "norm", r.hidden), g.const("lm_head", head)], "logits")
    f, d = TensorProto.FLOAT, r.head_dim
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT32, [1, 1]),
        helper.make_tensor_value_info("attention_mask", f, [1, 1, 1, r.context]),
        helper.make_tensor_value_info("position_ids_cos", f, [1, 1, 1, d // 2]),
        helper.make_tensor_value_info("position_ids_sin", f, [1, 1, 1, d // 2]),
    ]
    outputs = [helper.make_tensor_value_info("logits", f, [1, 1, r.vocab])]
    for layer in range(r.layers):
        inputs += [
            helper.make_tensor_value_info(f"past_key_{layer}_in", f, [1, r.kv_heads, d, r.past]),
            helper.make_tensor_value_info(f"past_value_{layer}_in", f, [1, r.kv_heads, r.past, d]),
        ]
        outputs += [
            helper.make_tensor_value_info(f"past_key_{layer}_out", f, [1, r.kv_heads, d, 1]),
            helper.make_tensor_value_info(f"past_value_{layer}_out", f, [1, r.kv_heads, 1, d]),
        ]
    graph = helper.make_graph(g.nodes, r.name, inputs, outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], producer_name="npuperf.genie_model")
    model.ir_version = 10
    return model


def rope_angles(recipe: GenieRecipe, position: int) -> Any:
    """The RoPE angles of ``position`` as Genie computes them from rope-dim and rope-theta."""
    import numpy as np

    half = recipe.head_dim // 2
    return position / (recipe.rope_theta ** (np.arange(half) / half))


def _quant_overrides(recipe: GenieRecipe) -> dict[str, Any]:
    """Fixed scales for the I/O Genie reads and writes (the past KV in and out must share theirs)."""
    import numpy as np

    def q(pair: tuple[float, int]) -> list[dict[str, Any]]:
        return [{"scale": np.array(pair[0], np.float32), "zero_point": np.array(pair[1], np.uint16)}]

    out = {"attention_mask": q(MASK_Q), "position_ids_cos": q(ROPE_Q), "position_ids_sin": q(ROPE_Q)}
    for layer in range(recipe.layers):
        for name in ("key", "value"):
            out[f"past_{name}_{layer}_in"] = q(KV_Q)
            out[f"past_{name}_{layer}_out"] = q(KV_Q)
    return out


def build(recipe: GenieRecipe, out: Path, *, log: Any = print) -> Path:
    """Float graph -> QDQ (uint16 activations, uint8 weights) -> natively quantised I/O, written to
    ``out/model_qio.onnx`` with the tokenizer; compiling is ``compile_context`` (needs the QNN EP)."""
    import tempfile

    import onnx

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="npuperf-genie-") as tmp:
        float_path, qdq_path = Path(tmp) / "float.onnx", Path(tmp) / "qdq.onnx"
        log(f"[1/4] float graph: {recipe.layers} layers, {recipe.heads} heads over {recipe.kv_heads} KV heads")
        model = float_decoder(recipe)
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, str(float_path))
        log(f"[2/4] QDQ quantisation ({recipe.calibration_steps} calibration steps)")
        _quantize(recipe, float_path, qdq_path)
        qio = quantised_io(settled_scales(onnx.load(str(qdq_path))))
        onnx.checker.check_model(qio)
        onnx.save(qio, str(out / QIO))
    write_tokenizer(out / "tokenizer.json")
    return out / QIO


def _quantize(recipe: GenieRecipe, src: Path, dst: Path) -> None:
    """ONNX Runtime's QNN flavour of QDQ (what its QNN EP expects), with the I/O scales fixed."""
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._feeds = iter(calibration_feeds(recipe))

        def get_next(self) -> dict[str, Any] | None:
            return next(self._feeds, None)

    config = get_qnn_qdq_config(
        str(src),
        Reader(),
        activation_type=QuantType.QUInt16,
        weight_type=QuantType.QUInt8,
        init_overrides=_quant_overrides(recipe),
    )
    quantize(str(src), str(dst), config)


def calibration_feeds(recipe: GenieRecipe) -> list[dict[str, Any]]:
    """Float inputs at positions spread over the context, with a random past (fixed seed)."""
    import numpy as np

    rng = np.random.default_rng(recipe.seed + 1)
    feeds = []
    for i in range(recipe.calibration_steps):
        position = i * (recipe.past // recipe.calibration_steps)
        angles = rope_angles(recipe, position).reshape(1, 1, 1, -1)
        mask = np.full((1, 1, 1, recipe.context), -100.0, np.float32)
        mask[..., :position] = 0.0
        mask[..., -1] = 0.0
        feed: dict[str, Any] = {
            "input_ids": rng.integers(32, 127, (1, 1)).astype(np.int32),
            "attention_mask": mask,
            "position_ids_cos": np.cos(angles).astype(np.float32),
            "position_ids_sin": np.sin(angles).astype(np.float32),
        }
        for layer in range(recipe.layers):
            feed[f"past_key_{layer}_in"] = (
                rng.standard_normal((1, recipe.kv_heads, recipe.head_dim, recipe.past)) * 0.5
            ).astype(np.float32)
            feed[f"past_value_{layer}_in"] = (
                rng.standard_normal((1, recipe.kv_heads, recipe.past, recipe.head_dim)) * 0.5
            ).astype(np.float32)
        feeds.append(feed)
    return feeds


# Mantissa bits an activation scale keeps (float32 has 23). The calibration runs the float graph on
# ONNX Runtime's CPU kernels, which differ by instruction set: AVX2 and AVX-512 hosts computed a few
# scales 1 ulp apart, so the bundle rebuilt byte for byte on one and not on the other. Rounded to 12
# bits (a relative step of 2.4e-4, far below what a uint16 activation resolves), such neighbours
# land on the same value; only one that straddles a rounding boundary (odds ~1e-3 per scale) would not.
SCALE_BITS = 12


def settled_scales(model: Any) -> Any:
    """The QDQ model with each activation scale rounded to SCALE_BITS mantissa bits (weights' and
    the fixed I/O scales untouched), so a rebuild does not depend on the CPU that calibrated it."""
    import numpy as np
    from onnx import numpy_helper

    g = model.graph
    inits = {i.name: i for i in g.initializer}
    fixed = {f"{name}_scale" for name in _quant_overrides_names(model)}
    drop = 23 - SCALE_BITS
    for node in g.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in inits or node.input[1] in fixed:
            continue
        scale = inits.get(node.input[1])
        if scale is None:
            continue
        bits = numpy_helper.to_array(scale).astype(np.float32).view(np.uint32)
        rounded = ((bits + np.uint32(1 << (drop - 1))) & np.uint32(0xFFFFFFFF ^ ((1 << drop) - 1))).view(np.float32)
        scale.CopyFrom(numpy_helper.from_array(rounded, scale.name))
    return model


def _quant_overrides_names(model: Any) -> set[str]:
    """The graph's I/O tensors, whose scales are fixed by the contract (``_quant_overrides``)."""
    g = model.graph
    return {i.name for i in g.input} | {o.name for o in g.output}


def quantised_io(model: Any) -> Any:
    """The QDQ model with natively quantised graph I/O: each graph input's QuantizeLinear and
    each graph output's DequantizeLinear dropped, the I/O typed as their zero points (uint16)."""
    from onnx import helper, numpy_helper

    g = model.graph
    inputs, outputs = {i.name: i for i in g.input}, {o.name: o for o in g.output}
    inits = {i.name: i for i in g.initializer}
    drop = []
    for node in list(g.node):
        if node.op_type == "QuantizeLinear" and node.input[0] in inputs:
            dtype = numpy_helper.to_array(inits[node.input[2]]).dtype
            _rename_input(g, node.output[0], node.input[0])
            inputs[node.input[0]].type.tensor_type.elem_type = helper.np_dtype_to_tensor_dtype(dtype)
            drop.append(node)
        elif node.op_type == "DequantizeLinear" and node.output[0] in outputs:
            dtype = numpy_helper.to_array(inits[node.input[2]]).dtype
            quantised, name = node.input[0], node.output[0]
            if _consumers(g, name, node):  # the float value is used inside the graph too: keep it
                node.output[0] = f"{name}_float"
                _rename_input(g, name, node.output[0], skip=node)
            else:
                drop.append(node)
            for producer in g.node:
                producer.output[:] = [name if o == quantised else o for o in producer.output]
            _rename_input(g, quantised, name)
            outputs[name].type.tensor_type.elem_type = helper.np_dtype_to_tensor_dtype(dtype)
    for node in drop:
        g.node.remove(node)
    del g.value_info[:]
    return model


def _consumers(g: Any, name: str, besides: Any) -> bool:
    return any(name in n.input for n in g.node if n is not besides)


def _rename_input(g: Any, old: str, new: str, skip: Any = None) -> None:
    for n in g.node:
        if n is not skip:
            n.input[:] = [new if i == old else i for i in n.input]


def write_tokenizer(path: Path) -> None:
    """Byte-level BPE without merges: token id = byte value; <|endoftext|> is 256."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    byte_chars = pre_tokenizers.ByteLevel.alphabet()
    table = _bytes_to_unicode()
    vocab = {table[b]: b for b in range(256)}
    assert set(vocab) == set(byte_chars)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(EOS, special=True)])
    tok.save(str(path))


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (what ByteLevel uses)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = printable[:], 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars, strict=True)}


def genie_config(recipe: GenieRecipe, binary: str) -> dict[str, Any]:
    """A ``basic`` dialog on QnnHtp over ``binary`` (paths relative to the config's folder)."""
    return {
        "dialog": {
            "version": 1,
            "type": "basic",
            "context": {
                "version": 1,
                "size": recipe.context,
                "n-vocab": recipe.vocab,
                "bos-token": -1,
                "eos-token": 256,
            },
            # greedy needs temp 0 and top-k 1: "greedy": true alone still sampled (../shared/genie-x86)
            "sampler": {"version": 1, "seed": 42, "temp": 0, "top-k": 1, "top-p": 1, "greedy": True},
            "tokenizer": {"version": 1, "path": "tokenizer.json"},
            "engine": {
                "version": 1,
                "n-threads": 1,
                "backend": {
                    "version": 1,
                    "type": "QnnHtp",
                    "QnnHtp": {
                        "version": 1,
                        "spill-fill-bufsize": 0,
                        "use-mmap": False,
                        "mmap-budget": 0,
                        "poll": False,
                        "cpu-mask": "0x1",
                        "kv-dim": recipe.head_dim,
                        "allow-async-init": False,
                    },
                },
                "model": {
                    "version": 1,
                    "type": "binary",
                    "binary": {"version": 1, "ctx-bins": [binary]},
                    "positional-encoding": {
                        "type": "rope",
                        "rope-dim": recipe.head_dim // 2,
                        "rope-theta": recipe.rope_theta,
                    },
                },
            },
            "max-num-tokens": 64,
        }
    }


def manifest(recipe: GenieRecipe, versions: dict[str, str], target: dict[str, str]) -> dict[str, Any]:
    return {
        "recipe": asdict(recipe),
        "weights": "random, fixed seed; LM head = embedding shifted by one byte (see npuperf/genie_model.py)",
        "contract": "Genie qnn-htp: natively quantised uint16 I/O, AR=1, past KV [1,kv,D,CL-1]/[1,kv,CL-1,D]",
        "compiled_for": target,
        "built_with": versions,
    }


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n", encoding="utf-8")


def compile_context(qio: Path, out: Path, name: str, target: dict[str, str]) -> Path:
    """Compile ``qio`` to a QNN context binary with ONNX Runtime's QNN EP (HTP backend; on x86_64
    the simulator) and put it at ``out/<name>_qnn.bin``. ``target``: extra QNN provider options,
    e.g. ``{"htp_arch": "73", "soc_model": "60"}`` for a device's HTP."""
    import shutil
    import tempfile

    import onnxruntime as ort
    import onnxruntime_qnn as qnn

    with tempfile.TemporaryDirectory(prefix="npuperf-genie-ctx-") as tmp:
        wrapper = Path(tmp) / f"{name}.onnx"
        if qnn.get_ep_name() not in {d.ep_name for d in ort.get_ep_devices()}:
            ort.register_execution_provider_library(qnn.get_ep_name(), qnn.get_library_path())
        devices = [d for d in ort.get_ep_devices() if d.ep_name == qnn.get_ep_name()]
        options = ort.SessionOptions()
        options.log_severity_level = 3
        for key, value in {
            "ep.context_enable": "1",
            "ep.context_file_path": str(wrapper),
            "ep.context_embed_mode": "0",
            "session.disable_cpu_ep_fallback": "1",
        }.items():
            options.add_session_config_entry(key, value)
        options.add_provider_for_devices(devices, {"backend_type": "htp", **target})
        ort.InferenceSession(qio.read_bytes(), sess_options=options)  # from bytes: no path in the graph names
        (binary,) = Path(tmp).glob("*.bin")
        target_path = out / f"{name}_qnn.bin"
        shutil.copyfile(binary, target_path)
    return target_path


def _q16(value: Any, pair: tuple[float, int]) -> Any:
    import numpy as np

    return np.clip(np.round(value / pair[0]) + pair[1], 0, 65535).astype(np.uint16)


def reference_tokens(recipe: GenieRecipe, qio: Path, prompt_ids: list[int], new_tokens: int) -> list[int]:
    """Greedy tokens of the quantised model on ONNX Runtime's CPU provider, fed as Genie feeds it:
    one token per step, the past KV filled from index 0, the current token in the last mask column."""
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(qio), providers=["CPUExecutionProvider"])
    r, zero = recipe, np.uint16(KV_Q[1])
    keys = [np.full((1, r.kv_heads, r.head_dim, r.past), zero, np.uint16) for _ in range(r.layers)]
    values = [np.full((1, r.kv_heads, r.past, r.head_dim), zero, np.uint16) for _ in range(r.layers)]
    out: list[int] = []
    token = prompt_ids[0]
    for position in range(len(prompt_ids) + new_tokens - 1):
        mask = np.full((1, 1, 1, r.context), -100.0, np.float32)
        mask[..., :position] = 0.0
        mask[..., -1] = 0.0
        angles = rope_angles(r, position).reshape(1, 1, 1, -1)
        feed = {
            "input_ids": np.array([[token]], np.int32),
            "attention_mask": _q16(mask, MASK_Q),
            "position_ids_cos": _q16(np.cos(angles), ROPE_Q),
            "position_ids_sin": _q16(np.sin(angles), ROPE_Q),
        }
        for layer in range(r.layers):
            feed[f"past_key_{layer}_in"], feed[f"past_value_{layer}_in"] = keys[layer], values[layer]
        logits, *kv = session.run(None, feed)
        for layer in range(r.layers):
            keys[layer][..., position] = kv[2 * layer][..., 0]
            values[layer][:, :, position, :] = kv[2 * layer + 1][:, :, 0, :]
        if position + 1 < len(prompt_ids):
            token = prompt_ids[position + 1]
        else:
            token = int(np.argmax(logits.reshape(-1)))
            out.append(token)
    return out
