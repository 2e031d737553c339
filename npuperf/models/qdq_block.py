"""One Qwen2 decoder block as a static-shape QDQ ONNX model, for the QNN HTP checks.

``npuperf synth qnn-block`` writes models/qnn-block/model.onnx: the shapes of
one layer of the embedded model (hidden 256, 4 query heads, 2 key/value heads,
intermediate 704) at a fixed sequence of 64 tokens, with seeded random weights, then
quantized for QNN (8-bit weights, 16-bit activations, as the QNN LLM exports use).

It is small enough for the HTP simulator to compile in well under a second, and real
enough that the checks exercise what a device model has: MatMuls, RMSNorm, RoPE,
grouped-query attention with a causal mask, softmax and a SwiGLU MLP.

``unsupported="Erf"`` (or any op) puts that op into the MLP: the tests use it to force
part of the graph to fall back to the CPU.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from npuperf.engines.base import installed_version

MANIFEST = "npuperf_model.json"


@dataclass(frozen=True)
class BlockRecipe:
    """What decides the block's shape and bytes (the embedded model's layer shape)."""

    name: str = "qnn-block"
    seq: int = 64
    hidden: int = 256
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 704
    seed: int = 20261125
    calibration_batches: int = 8
    activations: str = "uint16"
    weights: str = "uint8"

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


# Over 60 lines on purpose: one decoder layer's graph reads best top to bottom, node by node,
# and its node order is part of the byte-identical rebuild (tests/test_synth.py).
def float_block(recipe: BlockRecipe, unsupported: str | None = None) -> Any:
    """The float ONNX graph of one decoder block (an ``onnx.ModelProto``)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    r = recipe
    rng = np.random.default_rng(r.seed)
    inits: list[Any] = []
    nodes: list[Any] = []

    def const(name: str, value: Any) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(name: str, rows: int, cols: int) -> str:
        # 0.02 is Qwen2's initializer_range: the same spread as the embedded model's weights.
        return const(name, (rng.standard_normal((rows, cols)) * 0.02).astype(np.float32))

    def node(op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def rms_norm(x: str, prefix: str) -> str:
        sq = node("Mul", [x, x], f"{prefix}/square")
        mean = node("ReduceMean", [sq], f"{prefix}/mean", axes=[-1], keepdims=1)
        eps = node("Add", [mean, const(f"{prefix}.eps", np.float32(1e-6))], f"{prefix}/add_eps")
        root = node("Sqrt", [eps], f"{prefix}/sqrt")
        normed = node("Div", [x, root], f"{prefix}/normalize")
        return node("Mul", [normed, const(f"{prefix}.weight", np.ones(r.hidden, np.float32))], f"{prefix}/scale")

    def heads(x: str, n: int, prefix: str) -> str:
        shaped = node("Reshape", [x, const(f"{prefix}.shape", np.array([1, r.seq, n, r.head_dim]))], f"{prefix}/split")
        return node("Transpose", [shaped], f"{prefix}/bhsd", perm=[0, 2, 1, 3])

    half = r.head_dim // 2
    inv_freq = 1.0 / (1_000_000.0 ** (np.arange(0, r.head_dim, 2, dtype=np.float64) / r.head_dim))
    angles = np.outer(np.arange(r.seq), inv_freq)
    angles = np.concatenate([angles, angles], axis=-1)[None, None]
    cos = const("rope.cos", np.cos(angles).astype(np.float32))
    sin = const("rope.sin", np.sin(angles).astype(np.float32))

    def rope(x: str, prefix: str) -> str:
        first = node(
            "Slice",
            [
                x,
                const(f"{prefix}.s0", np.array([0])),
                const(f"{prefix}.e0", np.array([half])),
                const(f"{prefix}.ax", np.array([3])),
            ],
            f"{prefix}/first_half",
        )
        second = node(
            "Slice",
            [x, const(f"{prefix}.s1", np.array([half])), const(f"{prefix}.e1", np.array([r.head_dim])), f"{prefix}.ax"],
            f"{prefix}/second_half",
        )
        neg = node("Neg", [second], f"{prefix}/negate")
        rotated = node("Concat", [neg, first], f"{prefix}/rotate_half", axis=3)
        return node(
            "Add",
            [node("Mul", [x, cos], f"{prefix}/mul_cos"), node("Mul", [rotated, sin], f"{prefix}/mul_sin")],
            f"{prefix}/rotary",
        )

    def repeat_kv(x: str, prefix: str) -> str:
        rep = r.heads // r.kv_heads
        five = node(
            "Reshape",
            [x, const(f"{prefix}.s5", np.array([1, r.kv_heads, 1, r.seq, r.head_dim]))],
            f"{prefix}/unsqueeze",
        )
        tiled = node("Concat", [five] * rep, f"{prefix}/repeat", axis=2)
        return node(
            "Reshape", [tiled, const(f"{prefix}.s4", np.array([1, r.heads, r.seq, r.head_dim]))], f"{prefix}/merge"
        )

    x = "hidden_states"
    kv = r.kv_heads * r.head_dim
    n1 = rms_norm(x, "input_layernorm")
    q = node(
        "Add",
        [
            node("MatMul", [n1, weight("q.weight", r.hidden, r.hidden)], "q_proj/matmul"),
            const("q.bias", np.zeros(r.hidden, np.float32)),
        ],
        "q_proj/bias",
    )
    k = node(
        "Add",
        [
            node("MatMul", [n1, weight("k.weight", r.hidden, kv)], "k_proj/matmul"),
            const("k.bias", np.zeros(kv, np.float32)),
        ],
        "k_proj/bias",
    )
    v = node(
        "Add",
        [
            node("MatMul", [n1, weight("v.weight", r.hidden, kv)], "v_proj/matmul"),
            const("v.bias", np.zeros(kv, np.float32)),
        ],
        "v_proj/bias",
    )
    qh = rope(heads(q, r.heads, "q"), "q_rope")
    kh = repeat_kv(rope(heads(k, r.kv_heads, "k"), "k_rope"), "k_repeat")
    vh = repeat_kv(heads(v, r.kv_heads, "v"), "v_repeat")
    kt = node("Transpose", [kh], "attn/k_transpose", perm=[0, 1, 3, 2])
    scores = node("MatMul", [qh, kt], "attn/scores")
    scaled = node("Mul", [scores, const("attn.scale", np.float32(1 / np.sqrt(r.head_dim)))], "attn/scale")
    mask = np.triu(np.full((r.seq, r.seq), -10_000.0, np.float32), k=1)[None, None]
    masked = node("Add", [scaled, const("attn.causal_mask", mask)], "attn/causal_mask")
    probs = node("Softmax", [masked], "attn/softmax", axis=-1)
    ctx = node("MatMul", [probs, vh], "attn/context")
    merged = node(
        "Reshape",
        [node("Transpose", [ctx], "attn/bshd", perm=[0, 2, 1, 3]), const("attn.merge", np.array([1, r.seq, r.hidden]))],
        "attn/merge_heads",
    )
    o = node("MatMul", [merged, weight("o.weight", r.hidden, r.hidden)], "o_proj/matmul")
    h = node("Add", [x, o], "attn/residual")
    n2 = rms_norm(h, "post_attention_layernorm")
    gate = node("MatMul", [n2, weight("gate.weight", r.hidden, r.intermediate)], "mlp/gate_proj")
    if unsupported:
        gate = node(unsupported, [gate], f"mlp/{unsupported.lower()}")
    silu = node("Mul", [gate, node("Sigmoid", [gate], "mlp/sigmoid")], "mlp/silu")
    up = node("MatMul", [n2, weight("up.weight", r.hidden, r.intermediate)], "mlp/up_proj")
    act = node("Mul", [silu, up], "mlp/gate_times_up")
    down = node("MatMul", [act, weight("down.weight", r.intermediate, r.hidden)], "mlp/down_proj")
    out = node("Add", [h, down], "mlp/residual")
    nodes[-1].output[0] = "block_out"
    del out
    graph = helper.make_graph(
        nodes,
        r.name,
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, r.seq, r.hidden])],
        [helper.make_tensor_value_info("block_out", TensorProto.FLOAT, [1, r.seq, r.hidden])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="npuperf.qdq_block")
    model.ir_version = 9
    return model


def _calibration(recipe: BlockRecipe) -> Iterator[dict[str, Any]]:
    import numpy as np

    rng = np.random.default_rng(recipe.seed + 1)
    for _ in range(recipe.calibration_batches):
        yield {"hidden_states": rng.standard_normal((1, recipe.seq, recipe.hidden)).astype(np.float32)}


def build(recipe: BlockRecipe, out: Path, *, unsupported: str | None = None) -> Path:
    """Write ``out/model.onnx`` (QDQ, QNN flavour) and its manifest; returns the model path."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config

    types = {"uint8": QuantType.QUInt8, "uint16": QuantType.QUInt16}

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._batches = _calibration(recipe)

        def get_next(self) -> dict[str, Any] | None:
            return next(self._batches, None)

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="npuperf-block-") as tmp:
        float_path = Path(tmp) / "float.onnx"
        onnx.save(float_block(recipe, unsupported), str(float_path))
        config = get_qnn_qdq_config(
            str(float_path),
            Reader(),
            activation_type=types[recipe.activations],
            weight_type=types[recipe.weights],
        )
        target = out / "model.onnx"
        quantize(str(float_path), str(target), config)
    manifest = {
        "recipe": asdict(recipe),
        "unsupported_op": unsupported,
        "weights": "random (synthetic shape twin of one decoder layer of tiny-qwen2)",
        "inputs": {"hidden_states": [1, recipe.seq, recipe.hidden]},
        "built_with": {pkg: installed_version(pkg, missing="missing") for pkg in ("onnx", "onnxruntime", "numpy")},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return target
