"""Shape twins: real models' exact architecture with random weights, built on demand.

``--model synthetic:qwen2-0.5b`` runs the suite on a model with Qwen2-0.5B's shape (layers,
heads, KV heads, hidden and MLP widths, the 151 936-row vocabulary, tied embeddings), int4
for onnxruntime-genai's CPU provider. Its weights are random (the text it writes is
meaningless) and its tokenizer is trained on the project's corpus, so prompts are shorter in
characters than Qwen's for the same token count; the work per token - what latency measures -
is the real model's.

Twins are built once into a cache folder outside the repository (``NPUPERF_CACHE``, else the
user's cache folder) under ``b<BUILDER>/synthetic-<preset>`` and reused: the key is the preset
and this builder's version. A preset that cannot be built on this machine (its random fp32
weights alone would not fit in memory) is refused with the arithmetic. A cached twin whose
files are not the size they were built at (a full disk, a cleaner, a hand edit) is rebuilt,
saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from npuperf import atomic
from npuperf.models import floor
from npuperf.models import synth

BUILDER = 1  # bump when what a twin is built from changes (recipe fields, builder options)
PREFIX = "synthetic:"


class TwinError(ValueError):
    """A preset that is unknown, cannot be built here, or failed to build; the message says which."""


@dataclass(frozen=True)
class Twin:
    """A real model's decoder shape (its config.json) and what its twin is built with."""

    preset: str
    real_model: str
    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    tied: bool
    rope_theta: float
    context: int = 4096  # the twin's context window (the real models' is longer; KV is allocated for this)

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def config(self) -> dict[str, object]:
        """The real model's config.json fields that decide its shape."""
        return {
            "hidden_size": self.hidden,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "num_hidden_layers": self.layers,
            "intermediate_size": self.intermediate,
            "vocab_size": self.vocab,
            "tie_word_embeddings": self.tied,
        }

    def params(self) -> int:
        """Every parameter: what a decode step reads (npuperf.floor), plus an untied embedding table."""
        return floor.Shape.from_config(self.config()).decode_params() + (0 if self.tied else self.vocab * self.hidden)

    def recipe(self) -> synth.Recipe:
        return synth.Recipe(
            name=folder_name(self.preset),
            vocab_target=8192,
            hidden_size=self.hidden,
            intermediate_size=self.intermediate,
            layers=self.layers,
            heads=self.heads,
            kv_heads=self.kv_heads,
            context=self.context,
            seed=20261126,
            model_vocab=self.vocab,
            tied=self.tied,
            rope_theta=self.rope_theta,
        )


# The shapes of the published config.json files (Qwen/Qwen2-0.5B, Qwen/Qwen2.5-1.5B, Qwen/Qwen2-7B).
TWINS = {
    t.preset: t
    for t in (
        Twin("qwen2-0.5b", "Qwen2-0.5B", 151936, 896, 4864, 24, 14, 2, tied=True, rope_theta=1e6),
        Twin("qwen2.5-1.5b", "Qwen2.5-1.5B", 151936, 1536, 8960, 28, 12, 2, tied=True, rope_theta=1e6),
        Twin("qwen2-7b", "Qwen2-7B", 152064, 3584, 18944, 28, 28, 4, tied=False, rope_theta=1e6),
    )
}

# Peak memory of a build as a multiple of the twin's fp32 weights (torch's random init, the saved
# safetensors read back by the builder, its int4 quantization). Measured (benchmarks/twin_build.py,
# docs/twins.md): qwen2-0.5b 5.54 GiB over 1.84 GiB (3.0x), qwen2.5-1.5b 14.78 GiB over 5.75 GiB
# (2.6x); the refusal below takes the larger with 2 GiB of headroom.
PEAK_PER_FP32_BYTE = 3.0
HEADROOM = 2 * 2**30


def folder_name(preset: str) -> str:
    return f"synthetic-{preset}"


def cache_root() -> Path:
    """Where twins are kept: $NPUPERF_CACHE, else the platform's user cache folder."""
    if os.environ.get("NPUPERF_CACHE"):
        return Path(os.environ["NPUPERF_CACHE"])
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "npuperf" / "cache"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "npuperf"


def twin(preset: str) -> Twin:
    if preset not in TWINS:
        raise TwinError(f"unknown shape-twin preset {preset!r}; presets: {', '.join(sorted(TWINS))}")
    return TWINS[preset]


def location(preset: str) -> Path:
    return cache_root() / f"b{BUILDER}" / folder_name(twin(preset).preset)


def fits_here(t: Twin, total_bytes: int) -> str | None:
    """Why ``t`` cannot be built on a machine with ``total_bytes`` of memory (None: it can)."""
    fp32 = 4 * t.params()
    need = PEAK_PER_FP32_BYTE * fp32 + HEADROOM
    if need <= total_bytes:
        return None
    return (
        f"{t.preset} cannot be built on this machine: {t.params() / 1e9:.2f} B parameters are "
        f"{fp32 / 2**30:.1f} GiB as random fp32 weights, and a build peaks at about {PEAK_PER_FP32_BYTE:g}x "
        f"that plus 2 GiB ({need / 2**30:.1f} GiB; measured, docs/twins.md); this machine has "
        f"{total_bytes / 2**30:.1f} GiB. Its decode floor still comes from its config: python -m npuperf floor "
        f"--preset {t.preset}"
    )


def _memory() -> int:
    import psutil

    return int(psutil.virtual_memory().total)


Log = Callable[[str], None]


FILES = "npuperf_twin_files.json"  # each file's size when its build finished


def _damage(out: Path) -> str | None:
    """None when the cached twin at ``out`` is whole; otherwise what is wrong with it.

    Sizes, not hashes: a stat per file costs nothing beside a 300 MB-1 GB read, and catches
    what happens to caches (truncation, deletion); the weights are random, so a flipped byte
    changes no timing.
    """
    if not out.exists():
        return "not built"
    try:
        sizes = json.loads((out / FILES).read_text(encoding="utf-8"))["files"]
        if not isinstance(sizes, dict) or not sizes or not all(isinstance(v, int) for v in sizes.values()):
            raise ValueError("not a {name: size} map")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"its file list {FILES} is missing or unreadable ({exc.__class__.__name__})"
    for name, size in sorted(sizes.items()):
        try:
            actual = (out / name).stat().st_size
        except OSError:
            return f"{name} is missing"
        if actual != size:
            return f"{name} is {actual} bytes, {size} when built"
    return None


def _list_files(out: Path) -> None:
    sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file() and p.name != FILES}
    atomic.write_text(out / FILES, json.dumps({"files": sizes}, indent=2, sort_keys=True) + "\n")


def ensure(preset: str, log: Log = print) -> Path:
    """The twin's model folder, built first when it is not in the cache (with progress on ``log``).

    Two runs that want the same twin at once: one builds it under a lock, the other waits for the
    lock (up to BUILD_WAIT_S) and then uses it.
    """
    t = twin(preset)
    out = location(preset)
    if _damage(out) is None:
        return out
    problem = fits_here(t, _memory())
    if problem is not None:
        raise TwinError(problem)
    try:
        with atomic.locked(out.parent / f".{out.name}.lock", timeout_s=BUILD_WAIT_S):
            damage = _damage(out)
            if damage is None:  # built by another run while this one waited
                return out
            if out.exists():
                log(f"the cached shape twin at {out} is incomplete or damaged ({damage}): building it again")
            _build(t, out, log)
            _list_files(out)
    except atomic.LockTimeout as exc:
        raise TwinError(f"shape twin {preset}: {exc} (another run is building it?)") from exc
    except OSError as exc:
        raise TwinError(
            f"shape twin {preset}: cannot write the cache at {out} ({exc.strerror or exc}); "
            "set NPUPERF_CACHE to a writable folder"
        ) from exc
    return out


BUILD_WAIT_S = 1800.0  # the largest build here takes 88 s; a waiting run gives up after this


def _build(t: Twin, out: Path, log: Log) -> None:
    if out.exists():  # damaged, or a build that did not finish (never half-written, but be sure)
        shutil.rmtree(out)
    log(
        f"building shape twin {t.preset} ({t.real_model}'s shape, {t.params() / 1e9:.2f} B parameters, random "
        f"weights) into {out}; once, then reused"
    )
    started = time.monotonic()
    last = [0.0]

    def on_layer(done: int, total: int) -> None:
        elapsed = time.monotonic() - started
        if done > total:
            log(f"  [{'#' * 24}] {total} layers quantized to int4; writing the model files, {elapsed:.0f} s")
        elif time.monotonic() - last[0] >= 5 or done == total:  # a line every few seconds, not one per layer
            last[0] = time.monotonic()
            log(f"  [{'#' * (24 * done // total):<24}] layer {done}/{total}, {elapsed:.0f} s")

    try:
        synth.build(t.recipe(), out, log=lambda line: log(f"  {line}"), on_layer=on_layer)
    except synth.SynthError as exc:
        raise TwinError(f"shape twin {t.preset}: {exc}") from exc
    log(f"shape twin {t.preset} built in {time.monotonic() - started:.0f} s: {out}")


def resolve(model: str, log: Log = print) -> str:
    """``synthetic:<preset>`` as a model folder (built when needed); any other model as given."""
    if not model.startswith(PREFIX):
        return model
    return str(ensure(model[len(PREFIX) :], log))
