"""Synthetic "shape twin" models: real Qwen2 architecture, random weights, fixed seed.

``npuperf synth tiny`` (npuperf/cli/synth.py) rebuilds the embedded default model in models/tiny-qwen2:

1. a byte-level BPE tokenizer trained on the fixed bilingual corpus (npuperf/data/corpus.txt);
2. ``Qwen2ForCausalLM(config)`` with seeded random weights, written with ``save_pretrained``;
3. onnxruntime-genai's model builder, int4 for the CPU provider.

Needs the synth requirements (requirements-synth.txt: torch==2.13.0, transformers, ...).
The generated folder is committed, so running the suite never needs torch.

``npuperf synth qnn-block`` rebuilds models/qnn-block, the static-shape QDQ decoder block
the QNN checks run (qdq_block.py; needs onnx, not torch), and ``npuperf synth genie-tiny``
models/genie-tiny, the Qwen2-shaped decoder Qualcomm Genie runs as a real dialog
(genie_model.py, genie_build.py). Shape twins (twins.py) are built with this module's ``build``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from npuperf.prompts import CORPUS

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
MANIFEST = "npuperf_model.json"


@dataclass(frozen=True)
class Recipe:
    """Everything that decides a synthetic model's shape and bytes."""

    name: str
    vocab_target: int
    hidden_size: int
    intermediate_size: int
    layers: int
    heads: int
    kv_heads: int
    context: int
    seed: int
    precision: str = "int4"
    # a shape twin's embedding rows (the real model's vocabulary; 0: the trained tokenizer's size)
    model_vocab: int = 0
    tied: bool = False
    rope_theta: float = 10000.0


# 4 layers x hidden 256 is FIELD.md's measured shape: a few MB int4 and well under a
# millisecond per token on a 2-core machine, so the whole grid runs in seconds.
RECIPES = {
    "tiny": Recipe(
        name="tiny-qwen2",
        vocab_target=2048,
        hidden_size=256,
        intermediate_size=704,
        layers=4,
        heads=4,
        kv_heads=2,
        context=2048,
        seed=20261125,
    ),
}


# what onnxruntime-genai's model builder writes for the CPU provider
PRECISIONS = ("int4", "fp32")


LayerProgress = Callable[[int, int], None]  # (layers read so far, layers)


class SynthError(RuntimeError):
    """A synthetic model could not be built; the message says which step failed."""


def _train_tokenizer(recipe: Recipe, out: Path) -> int:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    lines = [line for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=recipe.vocab_target,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(lines, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=SPECIAL_TOKENS[0],
        pad_token=SPECIAL_TOKENS[0],
        unk_token=SPECIAL_TOKENS[0],
        model_max_length=recipe.context,
    )
    fast.save_pretrained(str(out))
    return len(tok.get_vocab())


def _save_random_qwen2(recipe: Recipe, vocab_size: int, out: Path) -> None:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(recipe.seed)
    # a twin's RoPE base is its real model's; the embedded model keeps the default it was built with
    rope: dict[str, Any] = {}
    if recipe.model_vocab:
        rope["rope_parameters"] = {"rope_type": "default", "rope_theta": recipe.rope_theta}
    config = Qwen2Config(
        vocab_size=max(vocab_size, recipe.model_vocab),
        hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size,
        num_hidden_layers=recipe.layers,
        num_attention_heads=recipe.heads,
        num_key_value_heads=recipe.kv_heads,
        max_position_embeddings=recipe.context,
        bos_token_id=0,
        eos_token_id=0,
        tie_word_embeddings=recipe.tied,
        **rope,
    )
    Qwen2ForCausalLM(config).eval().save_pretrained(str(out))


def _run_builder(recipe: Recipe, hf: Path, out: Path, cache: Path, on_layer: LayerProgress | None = None) -> None:
    cmd = [
        sys.executable,
        "-m",
        "onnxruntime_genai.models.builder",
        "-i",
        str(hf.resolve()),
        "-o",
        str(out.resolve()),
        "-p",
        recipe.precision,
        "-e",
        "cpu",
        "-c",
        str(cache.resolve()),
    ]
    # The builder stamps `git rev-parse HEAD` of its working directory into the model's
    # producer_version. Point git at no repository, so it falls back to the wheel's own
    # commit and the bytes do not depend on which checkout the build ran in.
    env = {**os.environ, "GIT_DIR": str(cache.resolve() / "no-git"), "PYTHONUNBUFFERED": "1"}
    lines: list[str] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:  # "Reading layer 3", "Saving ONNX model": the builder's progress, passed on
                lines.append(line.rstrip())
                if on_layer is not None and line.startswith("Reading layer "):
                    on_layer(int(line.split()[2]) + 1, recipe.layers)
                elif on_layer is not None and line.startswith("Saving ONNX model"):
                    on_layer(recipe.layers + 1, recipe.layers)  # past the layers: quantized, writing the files
        except BaseException:
            # Ctrl-C (or a failing progress callback): Popen's exit waits only 0.25 s for the
            # child on an interrupt, so the builder would run on, gigabytes of it, into the
            # temporary folder being deleted
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)  # reap it: killed, it goes at once
            raise
    if proc.returncode != 0:
        tail = "\n".join(lines[-15:])
        raise SynthError(f"onnxruntime-genai model builder failed (exit {proc.returncode}):\n{tail}")


def _pin_threads(config: Path) -> None:
    """One intra-op and one inter-op thread.

    The embedded model runs on shared 2-core CI machines, beside pytest and anything
    else on the box; one thread keeps a measurement from competing with itself for the
    second core. What the setting does to run-to-run noise was measured, and is mixed
    (docs/noise.md, benchmarks/process_noise.py): the verdict must tolerate process-level
    shifts either way.
    """
    doc = json.loads(config.read_text(encoding="utf-8"))
    options = doc["model"]["decoder"].setdefault("session_options", {})
    options["intra_op_num_threads"] = 1
    options["inter_op_num_threads"] = 1
    config.write_text(json.dumps(doc, indent=4) + "\n", encoding="utf-8")


TWIN_FIELDS = ("model_vocab", "tied", "rope_theta")


def _recipe_doc(recipe: Recipe) -> dict[str, Any]:
    """The recipe as the manifest records it; the embedded model's keeps the fields it was built with
    (its manifest is part of its bytes, and so of the model hash its baselines are keyed by)."""
    doc = asdict(recipe)
    return doc if recipe.model_vocab else {k: v for k, v in doc.items() if k not in TWIN_FIELDS}


def _decode_read_bytes(model: Path) -> int | None:
    """Bytes one decode step reads, counted from the ONNX initializers (npuperf.floor)."""
    from npuperf.models import floor

    counted = floor.onnx_read_bytes(model)
    return None if counted is None else counted[0]


def _versions() -> dict[str, str]:
    from npuperf.engines.base import installed_version

    return {
        pkg: installed_version(pkg, missing="missing")
        for pkg in ("torch", "transformers", "tokenizers", "onnxruntime-genai", "onnxruntime")
    }


def build(  # type: ignore[no-untyped-def]
    recipe: Recipe, out: Path, *, force: bool = False, log=print, on_layer: LayerProgress | None = None
) -> Path:
    """Build ``recipe`` into ``out`` atomically: nothing is replaced unless the build succeeds."""
    if out.exists() and not force:
        raise SynthError(f"{str(out)!r} already exists; pass --force to replace it")
    try:
        import tokenizers  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise SynthError(
            f"synthetic models need the synth requirements ({exc}); "
            "install them with: pip install -r requirements-synth.txt"
        ) from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="npuperf-synth-", dir=out.parent) as tmp:
        work = Path(tmp)
        hf, built = work / "hf", work / "onnx"
        log(f"[1/3] training byte-level BPE tokenizer on {CORPUS.name} (target vocab {recipe.vocab_target})")
        vocab = _train_tokenizer(recipe, hf)
        rows = max(vocab, recipe.model_vocab)
        log(f"[2/3] saving random Qwen2 weights (seed {recipe.seed}, {recipe.layers} layers, vocab {rows})")
        _save_random_qwen2(recipe, vocab, hf)
        log(f"[3/3] onnxruntime-genai model builder: {recipe.precision}, cpu")
        _run_builder(recipe, hf, built, work / "cache", on_layer)
        _pin_threads(built / "genai_config.json")
        counted = None
        if recipe.model_vocab:  # a twin keeps the real model's config.json (its shape) and what a step reads
            (built / "config.json").write_bytes((hf / "config.json").read_bytes())
            counted = _decode_read_bytes(built / "model.onnx")
        manifest = {
            "recipe": _recipe_doc(recipe),
            "vocab_size": vocab,
            **({"embedding_rows": rows} if recipe.model_vocab else {}),
            **({"decode_read_bytes": counted} if counted else {}),
            "corpus": CORPUS.name,
            "weights": "random (synthetic shape twin; outputs are meaningless text)",
            "built_with": _versions(),
        }
        (built / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if out.exists():
            old = work / "old"
            out.rename(old)
        built.rename(out)
    log(f"done: {out} ({sum(p.stat().st_size for p in out.iterdir()) / 1e6:.1f} MB)")
    return out
