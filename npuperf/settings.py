"""The suite's settings: parsed and validated from command-line values and pytest.ini.

Pure parsing: every error is a SettingsError whose message names the option, the value
received and what is accepted. plugin.py turns it into a pytest usage error.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from npuperf.htp import PERF_MODES
from npuperf.prompts import TEAM_PROMPTS

# Execution providers of the ort-genai engine (the genie engine always runs on QnnHtp).
EPS = ("cpu", "qnn")


class SettingsError(ValueError):
    """An option has a value the suite cannot use."""


@dataclass(frozen=True)
class Option:
    """One setting: its command-line flag, its pytest.ini key, default and help."""

    flag: str
    ini: str
    default: str
    help: str
    kind: str = "string"  # "string" | "flag"
    aliases: tuple[str, ...] = ()

    @property
    def dest(self) -> str:
        return "npuperf_" + self.flag.lstrip("-").replace("-", "_")


OPTIONS: tuple[Option, ...] = (
    Option("--engine", "npuperf_engine", "ort-genai", "engine to measure (see --engine=list in the README)"),
    Option("--model", "npuperf_model", "models/tiny-qwen2", "model path for the engine (relative to the rootdir)"),
    Option(
        "--ep",
        "npuperf_ep",
        "cpu",
        "execution provider of the ort-genai engine: cpu, or qnn (onnxruntime-qnn plugin, HTP)",
        aliases=("--provider",),
    ),
    Option(
        "--htp-perf-mode",
        "npuperf_htp_perf_mode",
        "burst",
        "HTP performance mode to request and to require (QNN EP, ort-genai --ep qnn, Genie's perf_profile)",
    ),
    Option(
        "--qnn-model",
        "npuperf_qnn_model",
        "models/qnn-block/model.onnx",
        "static-shape ONNX model for the QNN checks of test_backend.py (placement, perf mode, cache); 'none' to skip",
    ),
    Option("--qnn-runs", "npuperf_qnn_runs", "5", "inference runs per QNN probe process (the first is the cold call)"),
    Option(
        "--qnn-cache-dir",
        "npuperf_qnn_cache_dir",
        "",
        "folder for the QNN compile cache (EPContext model) of the checks; empty: a temporary folder",
    ),
    Option("--token-budgets", "npuperf_token_budgets", "8,16,32,64", "new-token budgets, comma list"),
    Option("--prompt-lengths", "npuperf_prompt_lengths", "8,64,256", "prompt lengths in tokens, comma list"),
    Option(
        "--team-prompts",
        "npuperf_team_prompts",
        ",".join(TEAM_PROMPTS),
        "literal team prompts to measure too, comma list, or 'none'",
    ),
    Option("--repetitions", "npuperf_repetitions", "10", "measured repetitions per case"),
    Option("--warmup", "npuperf_warmup", "5", "warm-up generations after the cold first call"),
    Option("--latency-budget-ms", "npuperf_latency_budget_ms", "500", "median latency budget per case (ms)"),
    Option("--breaker-ms", "npuperf_breaker_ms", "2000", "circuit breaker: no single request may exceed this (ms)"),
    Option("--load-budget-s", "npuperf_load_budget_s", "20", "model load budget (s)"),
    Option("--budgets-file", "npuperf_budgets_file", "", "TOML file of per-case latency budgets (see README)"),
    Option("--tolerance", "npuperf_tolerance", "0.10", "regression tolerance vs baseline, fraction (0.10 = 10%)"),
    Option(
        "--min-regression-ms",
        "npuperf_min_regression_ms",
        "1",
        "a regression must also add more than this to the median (ms); 0 to disable",
    ),
    Option(
        "--grid-tolerance",
        "npuperf_grid_tolerance",
        "0.03",
        "whole-grid regression tolerance: the median case's slowdown that fails the grid test",
    ),
    Option(
        "--noise-k",
        "npuperf_noise_k",
        "2",
        "materiality threshold = max(tolerance, noise-k x the baseline's noise floor)",
    ),
    Option("--alpha", "npuperf_alpha", "0.05", "family-wise error rate of the regression tests (Holm over the grid)"),
    Option(
        "--fail-inconclusive",
        "npuperf_fail_inconclusive",
        "false",
        "fail a case whose regression verdict is INCONCLUSIVE",
        kind="flag",
    ),
    Option(
        "--inject-slowdown",
        "npuperf_inject_slowdown",
        "0",
        "canary: slow the engine by this fraction per call and per token (0.10 = 10%); 0 = off",
    ),
    Option(
        "--confirm-runs",
        "npuperf_confirm_runs",
        "2",
        "re-measure a case that looks regressed this many times; it fails only if all confirm",
    ),
    Option(
        "--confirm-pause-s",
        "npuperf_confirm_pause_s",
        "1",
        "pause before the k-th confirming re-run is k times this (s), so a slow spell can end",
    ),
    Option(
        "--backend-url",
        "npuperf_backend_url",
        "",
        "the backend service to measure (http://host:port); empty: start the reference server on loopback",
    ),
    Option("--http-stream", "npuperf_http_stream", "true", "measure TTFT over HTTP from the SSE stream endpoint"),
    Option("--http-timeout-s", "npuperf_http_timeout_s", "60", "HTTP timeout per request (s)"),
    Option(
        "--http-tokenizer",
        "npuperf_http_tokenizer",
        "",
        "tokenizer.json of the model behind the service; empty: the --model's, else the embedded model's",
    ),
    Option("--http-clients", "npuperf_http_clients", "4", "concurrent clients of the service concurrency test"),
    Option("--http-requests", "npuperf_http_requests", "25", "requests per client of the concurrency test"),
    Option(
        "--http-overhead-ms",
        "npuperf_http_overhead_ms",
        "20",
        "limit on the median HTTP overhead (client latency - server in-process latency), ms",
    ),
    Option(
        "--http-agreement",
        "npuperf_http_agreement",
        "0.25",
        "benchmark endpoint vs client median: allowed gap as a fraction (plus 10 ms)",
    ),
    Option("--baselines-dir", "npuperf_baselines_dir", "baselines", "folder of accepted baselines"),
    Option(
        "--update-baselines",
        "npuperf_update_baselines",
        "false",
        "after the run, write this run's samples as the accepted baselines",
        kind="flag",
    ),
    Option(
        "--require-baseline",
        "npuperf_require_baseline",
        "false",
        "fail a case that has no baseline for this device/engine/model (nightly)",
        kind="flag",
    ),
    Option("--results-json", "npuperf_results_json", "reports/perf-results.json", "JSON results file; '' for none"),
)


@dataclass(frozen=True)
class Settings:
    engine: str
    model: str
    provider: str
    token_budgets: tuple[int, ...]
    prompt_lengths: tuple[int, ...]
    team_prompts: tuple[str, ...]
    repetitions: int
    warmup: int
    latency_budget_ms: float
    breaker_ms: float
    load_budget_s: float
    budget_overrides: Mapping[str, float] = field(default_factory=dict)
    budgets_file: str = ""
    tolerance: float = 0.10
    min_regression_ms: float = 1.0
    grid_tolerance: float = 0.03
    noise_k: float = 2.0
    alpha: float = 0.05
    fail_inconclusive: bool = False
    inject_slowdown: float = 0.0
    confirm_runs: int = 2
    confirm_pause_s: float = 1.0
    baselines_dir: str = "baselines"
    update_baselines: bool = False
    require_baseline: bool = False
    results_json: str = ""
    htp_perf_mode: str = "burst"
    qnn_model: str = ""
    qnn_runs: int = 5
    qnn_cache_dir: str = ""
    backend_url: str = ""
    http_stream: bool = True
    http_timeout_s: float = 60.0
    http_tokenizer: str = ""
    http_clients: int = 4
    http_requests: int = 25
    http_overhead_ms: float = 20.0
    http_agreement: float = 0.25

    def budget_for(self, case_id: str) -> float:
        """The latency budget of one case: its override, else the global budget."""
        return self.budget_overrides.get(case_id, self.latency_budget_ms)


def _int_list(flag: str, raw: str, minimum: int = 1) -> tuple[int, ...]:
    items = [p.strip() for p in raw.split(",") if p.strip()]
    if not items:
        raise SettingsError(f"{flag}: {raw!r} is empty; expected a comma list like 8,16,32")
    out = []
    for item in items:
        try:
            value = int(item)
        except ValueError:
            raise SettingsError(f"{flag}: {item!r} is not an integer; expected a comma list like 8,16,32") from None
        if value < minimum:
            raise SettingsError(f"{flag}: {value} is below {minimum}; expected integers >= {minimum}")
        out.append(value)
    if len(set(out)) != len(out):
        raise SettingsError(f"{flag}: {raw!r} repeats a value; list each once")
    return tuple(out)


def _int(flag: str, raw: str, minimum: int) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingsError(f"{flag}: {raw!r} is not an integer; expected an integer >= {minimum}") from None
    if value < minimum:
        raise SettingsError(f"{flag}: {value} is below {minimum}; expected an integer >= {minimum}")
    return value


def _float(flag: str, raw: str, accepted: str, valid: Callable[[float], bool]) -> float:
    """A finite number for which ``valid`` holds; ``accepted`` words the rule for the message."""
    try:
        value = float(raw.strip())
    except ValueError:
        raise SettingsError(f"{flag}: {raw!r} is not a number; expected {accepted}") from None
    if not math.isfinite(value) or not valid(value):
        raise SettingsError(f"{flag}: {raw!r} is out of range; expected {accepted}")
    return value


def _positive(flag: str, raw: str, unit: str) -> float:
    return _float(flag, raw, f"a positive number of {unit}", lambda v: v > 0)


def _non_negative(flag: str, raw: str, unit: str) -> float:
    return _float(flag, raw, f"a number of {unit} >= 0", lambda v: v >= 0)


def _flag(flag: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{flag}: {raw!r} is not a boolean; expected true or false")


def _choice(flag: str, raw: str, accepted: tuple[str, ...]) -> str:
    value = raw.strip().lower()
    if value not in accepted:
        raise SettingsError(f"{flag}: {raw!r} is not accepted; expected one of {', '.join(accepted)}")
    return value


def _url(flag: str, raw: str) -> str:
    value = raw.strip().rstrip("/")
    if value and not value.startswith(("http://", "https://")):
        raise SettingsError(f"{flag}: {raw!r} is not an http(s) URL; expected e.g. http://127.0.0.1:8000")
    return value


def _team_prompts(flag: str, raw: str) -> tuple[str, ...]:
    if raw.strip().lower() == "none":
        return ()
    names = tuple(p.strip() for p in raw.split(",") if p.strip())
    unknown = [n for n in names if n not in TEAM_PROMPTS]
    if unknown:
        raise SettingsError(
            f"{flag}: unknown prompt {unknown[0]!r}; expected 'none' or a comma list of {', '.join(TEAM_PROMPTS)}"
        )
    return names


def load_budget_overrides(path: Path) -> dict[str, float]:
    """Read per-case budgets: a TOML table ``[latency_ms]`` of case id -> milliseconds."""
    flag = "--budgets-file"
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"{flag}: cannot read {str(path)!r} ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{flag}: {str(path)!r} is not valid TOML ({exc})") from exc
    extra = set(doc) - {"latency_ms"}
    if extra:
        raise SettingsError(f"{flag}: {str(path)!r} has unknown table(s) {sorted(extra)}; expected only [latency_ms]")
    table = doc.get("latency_ms", {})
    if not isinstance(table, dict):
        raise SettingsError(f"{flag}: {str(path)!r}: latency_ms must be a table of case id = milliseconds")
    out = {}
    for case_id, value in table.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise SettingsError(
                f"{flag}: {str(path)!r}: {case_id} = {value!r}; expected a positive number of milliseconds"
            )
        out[str(case_id)] = float(value)
    return out


def resolve(get: Callable[[Option], str], rootdir: Path) -> Settings:
    """Build Settings; ``get(option)`` returns the raw string (command line, else ini, else default)."""
    raw: dict[str, Any] = {opt.dest.removeprefix("npuperf_"): get(opt) for opt in OPTIONS}
    flags = {opt.dest.removeprefix("npuperf_"): opt.flag for opt in OPTIONS}
    budgets_file = raw["budgets_file"].strip()
    overrides = load_budget_overrides(rootdir / budgets_file) if budgets_file else {}
    tolerance = _float(
        flags["tolerance"], raw["tolerance"], "a fraction from 0 to 10, like 0.10 for 10%", lambda v: 0 <= v < 10
    )
    engine = raw["engine"].strip()
    if not engine:
        raise SettingsError(f"{flags['engine']}: empty; expected an engine name such as ort-genai")
    settings = Settings(
        engine=engine,
        model=raw["model"].strip(),
        provider=_choice(flags["ep"], raw["ep"], EPS),
        token_budgets=_int_list(flags["token_budgets"], raw["token_budgets"]),
        prompt_lengths=_int_list(flags["prompt_lengths"], raw["prompt_lengths"]),
        team_prompts=_team_prompts(flags["team_prompts"], raw["team_prompts"]),
        repetitions=_int(flags["repetitions"], raw["repetitions"], 1),
        warmup=_int(flags["warmup"], raw["warmup"], 0),
        latency_budget_ms=_positive(flags["latency_budget_ms"], raw["latency_budget_ms"], "milliseconds"),
        breaker_ms=_positive(flags["breaker_ms"], raw["breaker_ms"], "milliseconds"),
        load_budget_s=_positive(flags["load_budget_s"], raw["load_budget_s"], "seconds"),
        budget_overrides=overrides,
        budgets_file=budgets_file,
        tolerance=tolerance,
        min_regression_ms=_non_negative(flags["min_regression_ms"], raw["min_regression_ms"], "milliseconds"),
        grid_tolerance=_float(
            flags["grid_tolerance"], raw["grid_tolerance"], "a fraction from 0 to 10, like 0.03", lambda v: 0 <= v < 10
        ),
        noise_k=_non_negative(flags["noise_k"], raw["noise_k"], "noise floors"),
        alpha=_float(flags["alpha"], raw["alpha"], "a probability between 0 and 1, like 0.05", lambda v: 0 < v < 1),
        fail_inconclusive=_flag(flags["fail_inconclusive"], raw["fail_inconclusive"]),
        inject_slowdown=_float(
            flags["inject_slowdown"],
            raw["inject_slowdown"],
            "a fraction from 0 (off) to 10, like 0.10",
            lambda v: 0 <= v <= 10,
        ),
        confirm_runs=_int(flags["confirm_runs"], raw["confirm_runs"], 0),
        confirm_pause_s=_non_negative(flags["confirm_pause_s"], raw["confirm_pause_s"], "seconds"),
        baselines_dir=raw["baselines_dir"].strip() or "baselines",
        update_baselines=_flag(flags["update_baselines"], raw["update_baselines"]),
        require_baseline=_flag(flags["require_baseline"], raw["require_baseline"]),
        results_json=raw["results_json"].strip(),
        htp_perf_mode=_choice(flags["htp_perf_mode"], raw["htp_perf_mode"], PERF_MODES),
        qnn_model="" if raw["qnn_model"].strip().lower() in ("", "none") else raw["qnn_model"].strip(),
        qnn_runs=_int(flags["qnn_runs"], raw["qnn_runs"], 1),
        qnn_cache_dir=raw["qnn_cache_dir"].strip(),
        backend_url=_url(flags["backend_url"], raw["backend_url"]),
        http_stream=_flag(flags["http_stream"], raw["http_stream"]),
        http_timeout_s=_positive(flags["http_timeout_s"], raw["http_timeout_s"], "seconds"),
        http_tokenizer=raw["http_tokenizer"].strip(),
        http_clients=_int(flags["http_clients"], raw["http_clients"], 1),
        http_requests=_int(flags["http_requests"], raw["http_requests"], 1),
        http_overhead_ms=_positive(flags["http_overhead_ms"], raw["http_overhead_ms"], "milliseconds"),
        http_agreement=_float(
            flags["http_agreement"], raw["http_agreement"], "a fraction from 0 to 10, like 0.25", lambda v: 0 <= v < 10
        ),
    )
    if settings.engine == "http" and not settings.backend_url:
        raise SettingsError("--engine http: needs --backend-url, e.g. --backend-url http://127.0.0.1:8000")
    if settings.inject_slowdown and settings.update_baselines:
        raise SettingsError(
            f"--inject-slowdown: {settings.inject_slowdown:g} with --update-baselines would accept a deliberately "
            "slowed run as the baseline; use one or the other"
        )
    return settings
