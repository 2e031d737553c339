"""``npuperf synth RECIPE``: build a synthetic model.

    npuperf synth tiny --force          # models/tiny-qwen2, the embedded model (needs requirements-synth.txt)
    npuperf synth qnn-block --force     # models/qnn-block, the QDQ block of the QNN checks (onnx)
    npuperf synth genie-tiny --force    # models/genie-tiny, the Genie bundle (onnx, onnxruntime-qnn)
    npuperf synth qwen2-0.5b            # a shape twin, into the cache (--model synthetic:qwen2-0.5b)

Every build goes to a temporary folder and replaces its output only when it succeeded, so an
error or Ctrl-C leaves the old model in place.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from npuperf.models import synth, twins

PROG = "npuperf synth"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("synth", help="build a synthetic model (the embedded ones, or a shape twin into the cache)")
    p.add_argument(
        "recipe",
        choices=[*sorted(synth.RECIPES), "qnn-block", "genie-tiny", *sorted(twins.TWINS)],
        help="which synthetic model to build (a shape-twin preset goes to the cache, --model synthetic:<preset>)",
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (default: models/<name>)")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.add_argument(
        "--unsupported-op",
        default=None,
        help="qnn-block only: put this ONNX op (e.g. Erf) into the MLP, to force a CPU fallback on QNN",
    )
    p.add_argument(
        "--precision",
        choices=synth.PRECISIONS,
        default=None,
        help="weights of a decoder model (default: the recipe's, int4); another precision is a re-export of the "
        "same model, e.g. to check that a baseline catches it",
    )
    p.add_argument("--htp-arch", default=None, help="genie-tiny only: QNN htp_arch of the target (e.g. 73)")
    p.add_argument("--soc-model", default=None, help="genie-tiny only: QNN soc_model of the target (e.g. 60)")


def _usage(message: str) -> int:
    print(f"usage error: {PROG}: {message}", file=sys.stderr)
    return 2


def build(args: argparse.Namespace) -> int:
    """Build what ``args`` names, printing progress; the exit status (2: it could not)."""
    if args.recipe in twins.TWINS:
        try:
            print(twins.ensure(args.recipe, log=lambda line: print(line, flush=True)))
        except twins.TwinError as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.recipe != "genie-tiny" and (args.htp_arch or args.soc_model):
        return _usage("--htp-arch and --soc-model apply to genie-tiny only")
    if args.recipe != "qnn-block" and args.unsupported_op:
        return _usage("--unsupported-op applies to qnn-block only")
    if args.recipe == "genie-tiny":
        target = {k: v for k, v in (("htp_arch", args.htp_arch), ("soc_model", args.soc_model)) if v}
        return _build_genie(args.out or Path("models") / "genie-tiny", force=args.force, target=target)
    if args.recipe == "qnn-block":
        return _build_block(args.out or Path("models") / "qnn-block", force=args.force, unsupported=args.unsupported_op)
    recipe = synth.RECIPES[args.recipe]
    if args.precision is not None:
        recipe = replace(recipe, precision=args.precision)
    out = args.out if args.out is not None else Path("models") / recipe.name
    try:
        synth.build(recipe, out, force=args.force)
    except synth.SynthError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    return 0


def _exists(out: Path, force: bool) -> bool:
    if out.exists() and not force:
        print(f"{PROG}: {str(out)!r} already exists; pass --force to replace it", file=sys.stderr)
        return True
    return False


def _build_block(out: Path, *, force: bool, unsupported: str | None = None) -> int:
    from npuperf.models import qdq_block

    if _exists(out, force):
        return 2
    try:
        import onnx  # noqa: F401
    except ImportError as exc:
        print(f"{PROG}: the QDQ block needs onnx ({exc}); pip install -r requirements-synth.txt", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="npuperf-synth-", dir=out.parent if out.parent.exists() else None) as tmp:
        built = Path(tmp) / "block"
        model = qdq_block.build(qdq_block.BlockRecipe(), built, unsupported=unsupported)
        if out.exists():
            out.rename(Path(tmp) / "old")
        built.rename(out)
    print(f"done: {out / model.name} ({(out / model.name).stat().st_size / 1e6:.2f} MB)")
    return 0


def _build_genie(out: Path, *, force: bool, target: dict[str, str]) -> int:
    from npuperf.models import genie_build

    if _exists(out, force):
        return 2
    try:
        genie_build.build_bundle(out, target)
    except genie_build.BuildError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    return 0
