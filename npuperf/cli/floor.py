"""``npuperf floor``: the decode floor of a model, and whether a latency target is possible at all.

    npuperf floor --preset qwen2-7b --bandwidth x-elite --prompt 64 --tokens 32 --budget-ms 500
    npuperf floor --model models/tiny-qwen2 --bandwidth probe

A preset needs no files (its config); a model folder is read (npuperf.floor).
"""

from __future__ import annotations

from pathlib import Path

from npuperf.cli.runs import CliError
from npuperf.models import floor, twins


def preset_config(preset: str) -> dict[str, object]:
    return twins.TWINS[preset].config()


def find(preset: str | None, model: Path | None, engine: str, precision: str, bandwidth: str) -> floor.Floor:
    try:
        bw = floor.bandwidth_of(bandwidth)
        if preset is not None:
            if preset not in twins.TWINS:
                raise CliError(f"--preset {preset!r}: expected one of {', '.join(sorted(twins.TWINS))}")
            return floor.from_config(preset_config(preset), precision, bw)
        if model is None:
            raise CliError("name a --preset or a --model")
        return floor.for_model(engine, model, bw)
    except (floor.FloorError, OSError) as exc:
        raise CliError(str(exc)) from exc


def render(found: floor.Floor, prompt: int, tokens: int, budget_ms: float) -> tuple[int, list[str]]:
    """The figures and the verdict; exit 1 when the budget is below the floor."""
    lines = [
        f"weights read per decode step: {floor.size(found.weight_bytes)} ({found.weights_source})",
        f"KV cache per position: {found.kv_bytes_per_position / 1e3:.1f} kB ({found.kv_source})",
        f"bandwidth: {found.bandwidth.gb_per_s:.3g} GB/s ({found.bandwidth.source})",
        f"decode floor: {found.decode_ms(prompt, tokens):.2f} ms per token at a {prompt}-token prompt",
        found.arithmetic(prompt, tokens, budget_ms),
        f"the floor allows at most {found.max_tokens(budget_ms, prompt)} new tokens within {budget_ms:g} ms",
    ]
    return (1 if found.latency_ms(prompt, tokens) > budget_ms else 0), lines
