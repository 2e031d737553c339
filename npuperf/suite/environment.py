"""What the reports say about the run's conditions (the environment table), and the one
check of the grid against the model's context that needs the loaded engine."""

from __future__ import annotations

from typing import Any

from npuperf.engines.base import Engine
from npuperf.machine import conditions
from npuperf.measure import WarmEngine
from npuperf.prompts import team_prompt
from npuperf.report import html as html_report
from npuperf.settings import Settings
from npuperf.suite.run import Run


def describe(run: Run, warm: WarmEngine | None) -> dict[str, str]:
    """Machine, checkout and, once loaded, the engine."""
    env = run.environment()
    if warm is not None:
        info = warm.engine.info
        env.update(
            {
                "Engine": info.engine,
                "Provider": info.provider,
                "Model": info.model_id,
                "Model sha256": info.model_sha256[:16],
                "Runtime versions": ", ".join(f"{k} {v}" for k, v in sorted(info.versions.items())),
                "Timing source": warm.cold.clock,
            }
        )
        env.update({f"Engine {k}": v for k, v in info.details.items()})
    if run.settings.inject_slowdown:
        env["Fault injection"] = (
            f"canary: every call and every token slowed by {run.settings.inject_slowdown:.0%} on purpose"
        )
    if run.settings.inject_stall:
        env["Stall injection"] = (
            f"canary: the middle token of every generation delayed {run.settings.inject_stall:g} ms"
        )
    env.update({f"Condition: {k}": v for k, v in conditions.now().items()})
    return env


def _metadata_key() -> Any:
    try:
        from pytest_metadata.plugin import metadata_key
    except ImportError:
        return None
    return metadata_key


def publish(config: Any, env: dict[str, str]) -> None:
    """Add ``env`` to pytest-metadata's table (the HTML report's environment section)."""
    key = _metadata_key()
    if key is not None:
        config.stash.setdefault(key, {}).update(env)


def make_inert(config: Any) -> None:
    """Escape the whole table in place: pytest-html renders its values as markup."""
    key = _metadata_key()
    if key is not None and key in config.stash:
        html_report.inert_environment(config.stash[key])


def over_context(settings: Settings, engine: Engine) -> str | None:
    """Why the grid cannot run on this model (a case's prompt + new tokens over its context),
    naming the options, their values and the limit; None when every case fits or the limit is unknown."""
    limit = engine.info.context_length
    if limit is None:
        return None
    team = [team_prompt(engine.tokenizer, name).tokens for name in settings.team_prompts]
    prompt, budget = max([*settings.prompt_lengths, *team]), max(settings.token_budgets)
    if prompt + budget <= limit:
        return None
    model = f"model {engine.info.model_id} holds {limit} tokens (prompt + new tokens)"
    if prompt >= limit:
        what = f"--prompt-lengths: a {prompt}-token prompt does not fit; {model}"
    elif budget >= limit:
        what = f"--token-budgets: {budget} new tokens do not fit; {model}"
    else:
        what = f"--prompt-lengths {prompt} with --token-budgets {budget} needs {prompt + budget} tokens; {model}"
    return f"{what}; choose values whose sum is at most {limit}"


def suite_config(s: Settings) -> dict[str, str]:
    """Settings of this run, and conditions of the machine, that change the engine's speed: part
    of the provenance (a change is named in every verdict)."""
    out = {}
    if s.engine == "genie" or s.provider == "qnn":
        out["htp perf mode"] = s.htp_perf_mode
    if s.inject_slowdown:
        out["inject slowdown"] = f"{s.inject_slowdown:g}"
    if s.inject_stall:
        out["inject stall ms"] = f"{s.inject_stall:g}"
    out.update(conditions.settled(conditions.now()))  # power source, power plan, governor
    return out
