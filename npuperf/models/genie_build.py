"""``npuperf synth genie-tiny``: build, compile and check the embedded Genie bundle.

Steps (npuperf/genie_model.py has the model): the float graph, QDQ quantisation with
natively quantised I/O, the tokenizer, the QNN context binary (ONNX Runtime's QNN EP), the
Genie config and a manifest; then a check that Genie (its C API, on the HTP simulator here)
and ONNX Runtime on the CPU produce the same greedy tokens. Everything is written into a
temporary folder first: an existing bundle is replaced only by a complete, checked one.
"""

from __future__ import annotations

import json
import platform
import tempfile
from collections.abc import Callable
from pathlib import Path

from npuperf.models import genie_model
from npuperf.engines.base import EngineError, installed_version

CHECK_PROMPT = "你好, Genie"
CHECK_TOKENS = 24
PACKAGES = ("onnx", "onnxruntime", "onnxruntime-qnn", "numpy", "tokenizers")


class BuildError(RuntimeError):
    """The bundle could not be built or failed its check; the message says which step."""


def build_bundle(out: Path, target: dict[str, str], log: Callable[[str], None] = print) -> Path:
    """Build genie-tiny into ``out`` (replacing it only when the new one is complete and checked)."""
    recipe = genie_model.GenieRecipe()
    try:
        import onnx  # noqa: F401
        import onnxruntime_qnn  # noqa: F401
    except ImportError as exc:
        raise BuildError(
            f"genie-tiny needs onnx and onnxruntime-qnn ({exc}); pip install -r requirements-synth.txt"
        ) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="npuperf-genie-", dir=out.parent) as tmp:
        work = Path(tmp) / recipe.name
        qio = genie_model.build(recipe, work, log=log)
        log(f"[3/4] QNN context binary ({'target ' + json.dumps(target) if target else 'HTP simulator'})")
        try:
            binary = genie_model.compile_context(qio, work, recipe.name, target)
        except Exception as exc:  # ONNX Runtime raises its own exception types for a failed compile
            raise BuildError(f"compiling the QNN context binary failed: {exc}") from None
        genie_model.write_json(work / genie_model.CONFIG, genie_model.genie_config(recipe, binary.name))
        versions = {p: installed_version(p, missing="missing") for p in PACKAGES}
        (work / genie_model.MANIFEST).write_text(
            json.dumps(
                genie_model.manifest(recipe, versions, target or {"htp": "simulator default"}), indent=2, sort_keys=True
            )
            + "\n",
            encoding="utf-8",
        )
        if target:
            log("[4/4] check skipped: a binary for a device's HTP does not run on this machine's simulator")
        else:
            log(f"[4/4] check: Genie and ONNX Runtime (CPU) on {CHECK_TOKENS} greedy tokens")
            check(work, recipe)
        if out.exists():
            out.rename(Path(tmp) / "old")
        work.rename(out)
    size = sum(p.stat().st_size for p in out.iterdir())
    log(f"done: {out} ({size / 1e6:.2f} MB)")
    return out


def check(bundle: Path, recipe: genie_model.GenieRecipe) -> list[int]:
    """Genie's greedy tokens equal ONNX Runtime's on the CPU for the same prompt; returns them."""
    from tokenizers import Tokenizer

    from npuperf.engines.genie.engine import GenieEngine

    tokenizer = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    ids = tokenizer.encode(CHECK_PROMPT).ids
    expected = genie_model.reference_tokens(recipe, bundle / genie_model.QIO, ids, CHECK_TOKENS)
    engine = GenieEngine(bundle / genie_model.CONFIG)
    try:
        engine.load()
        text = engine.generate(CHECK_PROMPT, CHECK_TOKENS).text
    except EngineError as exc:
        raise BuildError(f"Genie could not run the new bundle ({platform.machine()}): {exc}") from None
    finally:
        engine.close()
    if text != tokenizer.decode(expected):
        raise BuildError(f"Genie generated {text!r}; ONNX Runtime on the CPU {tokenizer.decode(expected)!r}")
    return expected
