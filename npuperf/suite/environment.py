"""What the reports say about the run's conditions (the environment table), and the settings that
join the provenance."""

from __future__ import annotations

from typing import Any

from npuperf.machine import conditions
from npuperf.machine.host import host_id
from npuperf.measure import Loaded
from npuperf.report import html as html_report
from npuperf.settings import Settings
from npuperf.suite.measuring import Measuring
from npuperf.suite.run import Run


def describe(run: Run, loaded: Loaded | None, measuring: Measuring | None = None) -> dict[str, str]:
    """Machine, checkout and, once loaded, the engine."""
    env = run.environment()
    env["Host"] = host_id()
    if loaded is not None:
        info = loaded.info
        env.update(
            {
                "Engine": info.engine,
                "Provider": info.provider,
                "Model": info.model_id,
                "Model sha256": info.model_sha256[:16],
                "Runtime versions": ", ".join(f"{k} {v}" for k, v in sorted(info.versions.items())),
                "Timing source": loaded.cold.clock,
            }
        )
        env.update({f"Engine {k}": v for k, v in info.details.items()})
    if measuring is not None:
        s = run.settings
        env["Measured in"] = (
            "this process (--processes 0)"
            if measuring.in_process
            else f"{measuring.per_pass} fresh worker processes x {s.repetitions} generations per case"
        )
        if measuring.ab:
            env["A/B reference"] = ", ".join(
                f"{flag} {value}" for flag, value in (("--ab-model", s.ab_model), ("--ab-python", s.ab_python)) if value
            )
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
