"""The suite's settings: parsed and validated from command-line values and pytest.ini.

Each setting is declared once, in OPTIONS: its flag, ini key, default, help and parser.
Pure parsing: every error is a SettingsError whose message names the option, the value
received and what is accepted. The plugin turns it into a pytest usage error.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from npuperf.judge.baselines import MATCHES
from npuperf.npu.htp import PERF_MODES
from npuperf.prompts import TEAM_PROMPTS

# Execution providers of the ort-genai engine (the genie engine always runs on QnnHtp).
EPS = ("cpu", "qnn")

# parse(flag, raw) -> value; raises SettingsError naming the flag
Parser = Callable[[str, str], Any]


class SettingsError(ValueError):
    """An option has a value the suite cannot use."""


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


def _text(flag: str, raw: str) -> str:
    return raw.strip()


def _name(flag: str, raw: str) -> str:
    value = raw.strip()
    if not value:
        raise SettingsError(f"{flag}: empty; expected an engine name such as ort-genai")
    return value


def _or_default(default: str) -> Parser:
    """Text, with ``default`` for an empty value."""
    return lambda flag, raw: raw.strip() or default


def _path_or_none(flag: str, raw: str) -> str:
    """A path, or '' for 'none' / empty (the feature is off)."""
    value = raw.strip()
    return "" if value.lower() in ("", "none") else value


def _at_least(minimum: int) -> Parser:
    return lambda flag, raw: _int(flag, raw, minimum)


def _positive_of(unit: str) -> Parser:
    return lambda flag, raw: _positive(flag, raw, unit)


def _non_negative_of(unit: str) -> Parser:
    return lambda flag, raw: _non_negative(flag, raw, unit)


def _fraction(accepted: str, upper_inclusive: bool = False) -> Parser:
    """A fraction from 0 to 10 (a 10x slowdown is the most any of them means)."""
    if upper_inclusive:
        return lambda flag, raw: _float(flag, raw, accepted, lambda v: 0 <= v <= 10)
    return lambda flag, raw: _float(flag, raw, accepted, lambda v: 0 <= v < 10)


def _probability(flag: str, raw: str) -> float:
    return _float(flag, raw, "a probability between 0 and 1, like 0.05", lambda v: 0 < v < 1)


def _model(flag: str, raw: str) -> str:
    """A model path, or synthetic:<preset> naming a known shape twin."""
    from npuperf.models import twins

    value = raw.strip()
    if value.startswith(twins.PREFIX):
        preset = value[len(twins.PREFIX) :]
        if preset not in twins.TWINS:
            raise SettingsError(
                f"{flag}: unknown shape twin {preset!r}; expected synthetic:<preset>, presets: "
                f"{', '.join(sorted(twins.TWINS))}"
            )
    return value


def _bandwidth(flag: str, raw: str) -> str:
    from npuperf.models import floor

    value = raw.strip().lower()
    if value == "auto":
        return value
    try:
        floor.bandwidth_of(value) if value != "probe" else None
    except floor.FloorError as exc:
        raise SettingsError(f"{flag}: {str(exc).replace('memory bandwidth ', '', 1)}") from None
    return value


def _one_of(accepted: tuple[str, ...]) -> Parser:
    return lambda flag, raw: _choice(flag, raw, accepted)


@dataclass(frozen=True)
class Option:
    """One setting: its command-line flag, pytest.ini key, default, help and parser."""

    flag: str
    ini: str
    default: str
    help: str
    parse: Parser = _text
    kind: str = "string"  # "string" | "flag"
    aliases: tuple[str, ...] = ()
    field: str = ""  # the Settings field, when it is not the flag's name

    @property
    def dest(self) -> str:
        return "npuperf_" + self.flag.lstrip("-").replace("-", "_")

    @property
    def name(self) -> str:
        """The Settings field this option fills."""
        return self.field or self.dest.removeprefix("npuperf_")


OPTIONS: tuple[Option, ...] = (
    Option("--engine", "npuperf_engine", "ort-genai", "engine to measure (see --engine=list in the README)", _name),
    Option(
        "--model",
        "npuperf_model",
        "models/tiny-qwen2",
        "model path for the engine (relative to the rootdir), or synthetic:<preset> for a shape twin "
        "(qwen2-0.5b, qwen2.5-1.5b; built once into the cache, needs requirements-synth.txt)",
        _model,
    ),
    Option(
        "--ep",
        "npuperf_ep",
        "cpu",
        "execution provider of the ort-genai engine: cpu, or qnn (onnxruntime-qnn plugin, HTP)",
        _one_of(EPS),
        aliases=("--provider",),
        field="provider",
    ),
    Option(
        "--htp-perf-mode",
        "npuperf_htp_perf_mode",
        "burst",
        "HTP performance mode to request and to require (QNN EP, ort-genai --ep qnn, Genie's perf_profile)",
        _one_of(PERF_MODES),
    ),
    Option(
        "--genie-backend",
        "npuperf_genie_backend",
        "auto",
        "how the genie engine runs Genie: appbuilder (qai_appbuilder.GenieContext), capi (Genie's C API from "
        "onnxruntime-qnn's library, or --genie-lib), auto (appbuilder where installed, else capi)",
        _one_of(("auto", "appbuilder", "capi")),
    ),
    Option(
        "--genie-lib",
        "npuperf_genie_lib",
        "",
        "the Genie library for --genie-backend capi (a QAIRT SDK's libGenie.so / Genie.dll); '' for the one "
        "onnxruntime-qnn ships",
    ),
    Option(
        "--qnn-model",
        "npuperf_qnn_model",
        "models/qnn-block/model.onnx",
        "static-shape ONNX model for the QNN checks of test_backend.py (placement, perf mode, cache); 'none' to skip",
        _path_or_none,
    ),
    Option(
        "--qnn-runs",
        "npuperf_qnn_runs",
        "5",
        "inference runs per QNN probe process (the first is the cold call)",
        _at_least(1),
    ),
    Option(
        "--qnn-cache-dir",
        "npuperf_qnn_cache_dir",
        "",
        "folder for the QNN compile cache (EPContext model) of the checks; empty: a temporary folder",
    ),
    Option("--token-budgets", "npuperf_token_budgets", "8,16,32,64", "new-token budgets, comma list", _int_list),
    Option("--prompt-lengths", "npuperf_prompt_lengths", "8,64,256", "prompt lengths in tokens, comma list", _int_list),
    Option(
        "--team-prompts",
        "npuperf_team_prompts",
        ",".join(TEAM_PROMPTS),
        "literal team prompts to measure too, comma list, or 'none'",
        _team_prompts,
    ),
    Option(
        "--processes",
        "npuperf_processes",
        "5",
        "fresh worker processes that each load the model and measure every case (their medians are the "
        "verdict's unit); 0 measures in this process",
        _at_least(0),
    ),
    Option(
        "--repetitions",
        "npuperf_repetitions",
        "4",
        "measured generations per case in each process",
        _at_least(1),
    ),
    Option("--warmup", "npuperf_warmup", "5", "warm-up generations after the cold first call", _at_least(0)),
    Option(
        "--latency-budget-ms",
        "npuperf_latency_budget_ms",
        "500",
        "median latency budget per case (ms)",
        _positive_of("milliseconds"),
    ),
    Option(
        "--breaker-ms",
        "npuperf_breaker_ms",
        "2000",
        "circuit breaker: no single request may exceed this (ms)",
        _positive_of("milliseconds"),
    ),
    Option("--load-budget-s", "npuperf_load_budget_s", "20", "model load budget (s)", _positive_of("seconds")),
    Option("--budgets-file", "npuperf_budgets_file", "", "TOML file of per-case latency budgets (see README)"),
    Option(
        "--tolerance",
        "npuperf_tolerance",
        "0.10",
        "regression tolerance vs baseline, fraction (0.10 = 10%)",
        _fraction("a fraction from 0 to 10, like 0.10 for 10%"),
    ),
    Option(
        "--min-regression-ms",
        "npuperf_min_regression_ms",
        "1",
        "a regression must also add more than this to the median (ms); 0 to disable",
        _non_negative_of("milliseconds"),
    ),
    Option(
        "--grid-tolerance",
        "npuperf_grid_tolerance",
        "0.03",
        "whole-grid regression tolerance: the median case's slowdown that fails the grid test",
        _fraction("a fraction from 0 to 10, like 0.03"),
    ),
    Option(
        "--noise-k",
        "npuperf_noise_k",
        "2",
        "materiality threshold = max(tolerance, noise-k x the baseline's noise floor)",
        _non_negative_of("noise floors"),
    ),
    Option(
        "--alpha",
        "npuperf_alpha",
        "0.05",
        "family-wise error rate of the regression tests (Holm over the grid)",
        _probability,
    ),
    Option(
        "--fail-inconclusive",
        "npuperf_fail_inconclusive",
        "false",
        "fail a case whose regression verdict is INCONCLUSIVE",
        _flag,
        kind="flag",
    ),
    Option(
        "--max-background-cores",
        "npuperf_max_background_cores",
        "0.25",
        "the machine is busy when other processes keep more cores than this busy during a case; a large value "
        "turns the check off",
        _non_negative_of("cores"),
    ),
    Option(
        "--busy-tolerance",
        "npuperf_busy_tolerance",
        "0.25",
        "regression tolerance (per case and grid) of cases measured while the machine was busy, fraction",
        _fraction("a fraction from 0 to 10, like 0.25"),
    ),
    Option(
        "--quiet-wait-s",
        "npuperf_quiet_wait_s",
        "60",
        "cases measured while other processes kept the machine busy are measured again once it is quiet; "
        "wait at most this long for that (s)",
        _non_negative_of("seconds"),
    ),
    Option(
        "--cross-host",
        "npuperf_cross_host",
        "advisory",
        "a baseline recorded on another host: advisory (regressions against it are shown, not failed) or "
        "strict (failed as on this host)",
        _one_of(("advisory", "strict")),
    ),
    Option(
        "--record-budget-s",
        "npuperf_record_budget_s",
        "600",
        "--update-baselines measures passes until two agree (and none was disturbed) for at most this long (s) "
        "before it refuses",
        _positive_of("seconds"),
    ),
    Option(
        "--ab-model",
        "npuperf_ab_model",
        "",
        "A/B: measure this reference model (a folder or Genie config) in processes alternating with --model's, "
        "and judge --model against it instead of the stored baseline",
    ),
    Option(
        "--ab-python",
        "npuperf_ab_python",
        "",
        "A/B: start the reference's processes with this Python (another environment: a runtime or SDK upgrade)",
    ),
    Option(
        "--max-noise-floor",
        "npuperf_max_noise_floor",
        "0.10",
        "--update-baselines refuses a recording whose two passes disagree more than this (grid noise floor)",
        _fraction("a fraction from 0 to 10, like 0.10"),
    ),
    Option(
        "--inject-slowdown",
        "npuperf_inject_slowdown",
        "0",
        "canary: slow the engine by this fraction per call and per token (0.10 = 10%); 0 = off",
        _fraction("a fraction from 0 (off) to 10, like 0.10", upper_inclusive=True),
    ),
    Option(
        "--inject-stall",
        "npuperf_inject_stall",
        "0",
        "canary: delay one token in the middle of every generation by this many ms (a stall); 0 = off",
        _non_negative_of("milliseconds"),
    ),
    Option(
        "--max-cpu-cores",
        "npuperf_max_cpu_cores",
        "2",
        "NPU engines (genie, --ep qnn): fail a case whose decode keeps more CPU cores busy than this "
        "(a CPU fallback's signature; docs/npu.md); 0 = off",
        _non_negative_of("cores"),
    ),
    Option(
        "--memory-bandwidth",
        "npuperf_memory_bandwidth",
        "auto",
        "memory bandwidth for the decode floor: auto (an NPU engine on a known Snapdragon: its SoC's figure; "
        "else probe), probe (measure this machine, one thread), a SoC (x-elite, x-elite-1de, x-plus), or GB/s",
        _bandwidth,
    ),
    Option(
        "--memory-budget-mb",
        "npuperf_memory_budget_mb",
        "0",
        "fail a case whose peak resident memory (this process) goes over this many MB; 0 = off",
        _non_negative_of("megabytes"),
    ),
    Option(
        "--confirm-runs",
        "npuperf_confirm_runs",
        "2",
        "re-measure a case that looks regressed this many times; it fails only if all confirm",
        _at_least(0),
    ),
    Option(
        "--confirm-pause-s",
        "npuperf_confirm_pause_s",
        "1",
        "pause before the k-th confirming re-run is k times this (s), so a slow spell can end",
        _non_negative_of("seconds"),
    ),
    Option(
        "--backend-url",
        "npuperf_backend_url",
        "",
        "the backend service to measure (http://host:port); empty: start the reference server on loopback",
        _url,
    ),
    Option(
        "--http-stream",
        "npuperf_http_stream",
        "true",
        "measure TTFT over HTTP from the SSE stream endpoint",
        _flag,
    ),
    Option("--http-timeout-s", "npuperf_http_timeout_s", "60", "HTTP timeout per request (s)", _positive_of("seconds")),
    Option(
        "--http-tokenizer",
        "npuperf_http_tokenizer",
        "",
        "tokenizer.json of the model behind the service; empty: the --model's, else the embedded model's",
    ),
    Option(
        "--http-clients",
        "npuperf_http_clients",
        "4",
        "concurrent clients of the service concurrency test",
        _at_least(1),
    ),
    Option(
        "--http-requests",
        "npuperf_http_requests",
        "25",
        "requests per client of the concurrency test",
        _at_least(1),
    ),
    Option(
        "--http-overhead-ms",
        "npuperf_http_overhead_ms",
        "20",
        "limit on the median HTTP overhead (client latency - server in-process latency), ms",
        _positive_of("milliseconds"),
    ),
    Option(
        "--http-agreement",
        "npuperf_http_agreement",
        "0.25",
        "benchmark endpoint vs client median: allowed gap as a fraction (plus 10 ms)",
        _fraction("a fraction from 0 to 10, like 0.25"),
    ),
    Option(
        "--baselines-dir",
        "npuperf_baselines_dir",
        "baselines",
        "folder of accepted baselines",
        _or_default("baselines"),
    ),
    Option(
        "--baseline-match",
        "npuperf_baseline_match",
        "identity",
        "identity: compare with the baseline of this device, engine, provider and model name, and say "
        "what changed (model hash, runtime versions, configs); strict: only with one of the same model, "
        "runtimes and configs",
        _one_of(MATCHES),
    ),
    Option(
        "--update-baselines",
        "npuperf_update_baselines",
        "false",
        "after the run, write this run's samples as the accepted baselines",
        _flag,
        kind="flag",
    ),
    Option(
        "--require-baseline",
        "npuperf_require_baseline",
        "false",
        "fail a case that has no baseline for this device/engine/model (nightly)",
        _flag,
        kind="flag",
    ),
    Option("--results-json", "npuperf_results_json", "reports/perf-results.json", "JSON results file; '' for none"),
    Option(
        "--history",
        "npuperf_history",
        "reports/history.sqlite",
        "history store every run is appended to (SQLite); 'none' to keep no history",
        _path_or_none,
    ),
)


@dataclass(frozen=True)
class Settings:
    """The parsed options (one field per OPTIONS row, named by ``Option.name``) and what
    follows from them. Built by ``resolve``; the defaults live in OPTIONS alone."""

    engine: str
    model: str
    provider: str
    htp_perf_mode: str
    genie_backend: str
    genie_lib: str
    qnn_model: str
    qnn_runs: int
    qnn_cache_dir: str
    token_budgets: tuple[int, ...]
    prompt_lengths: tuple[int, ...]
    team_prompts: tuple[str, ...]
    processes: int
    repetitions: int
    warmup: int
    latency_budget_ms: float
    breaker_ms: float
    load_budget_s: float
    budgets_file: str
    tolerance: float
    min_regression_ms: float
    grid_tolerance: float
    noise_k: float
    alpha: float
    fail_inconclusive: bool
    max_background_cores: float
    busy_tolerance: float
    quiet_wait_s: float
    cross_host: str
    record_budget_s: float
    ab_model: str
    ab_python: str
    max_noise_floor: float
    inject_slowdown: float
    inject_stall: float
    max_cpu_cores: float
    memory_bandwidth: str
    memory_budget_mb: float
    confirm_runs: int
    confirm_pause_s: float
    backend_url: str
    http_stream: bool
    http_timeout_s: float
    http_tokenizer: str
    http_clients: int
    http_requests: int
    http_overhead_ms: float
    http_agreement: float
    baselines_dir: str
    baseline_match: str
    update_baselines: bool
    require_baseline: bool
    results_json: str
    history: str
    # from --budgets-file: case id -> ms
    budget_overrides: Mapping[str, float] = field(default_factory=dict)

    def budget_for(self, case_id: str) -> float:
        """The latency budget of one case: its override, else the global budget."""
        return self.budget_overrides.get(case_id, self.latency_budget_ms)


DERIVED = ("budget_overrides",)


def resolve(get: Callable[[Option], str], rootdir: Path) -> Settings:
    """Build Settings; ``get(option)`` returns the raw string (command line, else ini, else default)."""
    values = {opt.name: opt.parse(opt.flag, get(opt)) for opt in OPTIONS}
    if values["budgets_file"]:
        values["budget_overrides"] = load_budget_overrides(rootdir / values["budgets_file"])
    settings = Settings(**values)
    _check_combinations(settings)
    return settings


def _check_combinations(settings: Settings) -> None:
    """Options that are each valid but cannot go together."""
    if settings.engine == "http" and not settings.backend_url:
        raise SettingsError("--engine http: needs --backend-url, e.g. --backend-url http://127.0.0.1:8000")
    if settings.engine == "genie" and settings.model.startswith("synthetic:"):
        raise SettingsError(
            f"--model {settings.model}: a shape twin is an onnxruntime-genai model (--engine ort-genai); "
            "the genie engine takes a bundle's genie_config.json"
        )
    ab = settings.ab_model or settings.ab_python
    if ab and settings.update_baselines:
        raise SettingsError(
            "--ab-model/--ab-python with --update-baselines: an A/B run judges against its reference, not a "
            "baseline; use one or the other"
        )
    if ab and settings.processes < 1:
        raise SettingsError(
            f"--processes {settings.processes} with --ab-model/--ab-python: an A/B run alternates worker processes; "
            "expected --processes 1 or more"
        )
    if settings.inject_stall and settings.update_baselines:
        raise SettingsError(
            f"--inject-stall: {settings.inject_stall:g} ms with --update-baselines would accept a deliberately "
            "stalled run as the baseline; use one or the other"
        )
    if settings.inject_slowdown and settings.update_baselines:
        raise SettingsError(
            f"--inject-slowdown: {settings.inject_slowdown:g} with --update-baselines would accept a deliberately "
            "slowed run as the baseline; use one or the other"
        )


def field_names() -> set[str]:
    """The Settings fields (tests check that each comes from exactly one option or is derived)."""
    return {f.name for f in fields(Settings)}
