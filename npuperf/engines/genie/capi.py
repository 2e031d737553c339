"""Qualcomm Genie through its C API (ctypes; no compiler, no qai-appbuilder).

The onnxruntime-qnn wheel ships Genie itself: ``libGenie.so`` on Linux x86_64 (whose
``QnnHtp`` backend is the HTP simulator) and ``Genie.dll`` beside the HTP stubs on Windows
ARM64. ``--genie-lib PATH`` points at another build (a QAIRT SDK's). Declarations follow
the SDK headers (``include/Genie/GenieDialog.h``, ``GenieCommon.h``, ``GenieLog.h``,
``GenieProfile.h``); every call's status is checked, and a failure is a ``GenieError``
naming the call, the status and the last lines Genie logged.

Timing: the query callback runs once per generated token; its arrival is stamped with this
process's ``perf_counter_ns``, so per-token times from this backend are client-clock
figures (the AppBuilder wrapper polls its callback every ~100 ms and cannot give them).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from npuperf.engines.base import EngineError, Generation, ModelError, OnToken, phases_of
from npuperf.engines.genie.config import GenieConfig
from npuperf.engines.genie.profile import CLOCK, parse_profile, profile_figures, profile_generation
from npuperf.machine.device import htp_simulated

STATUS = {
    0: "SUCCESS",
    1: "WARNING_ABORTED",
    2: "WARNING_BOUND_HANDLE",
    3: "WARNING_PAUSED",
    4: "WARNING_CONTEXT_EXCEEDED",
    -1: "ERROR_GENERAL",
    -2: "ERROR_INVALID_ARGUMENT",
    -3: "ERROR_MEM_ALLOC",
    -4: "ERROR_INVALID_CONFIG",
    -5: "ERROR_INVALID_HANDLE",
    -6: "ERROR_QUERY_FAILED",
    -7: "ERROR_JSON_FORMAT",
    -8: "ERROR_JSON_SCHEMA",
    -9: "ERROR_JSON_VALUE",
    -10: "ERROR_GENERATE_FAILED",
    -11: "ERROR_GET_HANDLE_FAILED",
    -12: "ERROR_APPLY_CONFIG_FAILED",
    -13: "ERROR_SET_PARAMS_FAILED",
    -14: "ERROR_BOUND_HANDLE",
}
# Genie_PerformancePolicy_t (GenieCommon.h)
POLICIES = {
    "burst": 10,
    "sustained_high_performance": 20,
    "high_performance": 30,
    "balanced": 40,
    "low_balanced": 50,
    "high_power_saver": 60,
    "power_saver": 70,
    "low_power_saver": 80,
    "extreme_power_saver": 90,
}
SENTENCE = {0: "complete", 1: "begin", 2: "continue", 3: "end", 4: "abort", 5: "rewind", 6: "resume"}
ACTION_ABORT = 1
LOG_WARN, LOG_INFO = 2, 3
LIBRARY = {"win32": "Genie.dll", "darwin": "libGenie.dylib"}.get(sys.platform, "libGenie.so")

_VP = ctypes.c_void_p
_QUERY_CB = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, _VP)
_ALLOC_CB = ctypes.CFUNCTYPE(None, ctypes.c_size_t, ctypes.POINTER(_VP))
# void (*)(const GenieLog_Handle_t, const char* fmt, GenieLog_Level_t, uint64_t timestamp, va_list)
_LOG_CB = ctypes.CFUNCTYPE(None, _VP, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint64, _VP)


class GenieError(EngineError):
    """A Genie C API call failed: the call, its status and what Genie logged about it, on one line."""

    def __init__(self, call: str, status: int, log: list[str]) -> None:
        said = relevant(log)
        super().__init__(
            f"{call} failed: {STATUS.get(status, 'unknown status')} ({status})" + (f"; Genie: {said}" if said else "")
        )
        self.call, self.status, self.log = call, status, log


_TROUBLE = ("fail", "error", "invalid", "could not", "can't", "cannot", "not found", "unable", "exceed")


def relevant(log: list[str], most: int = 3) -> str:
    """The log lines that say what went wrong (else the last ones), each on one line, without repeats."""
    flat = [" ".join(line.split()) for line in log if line.strip()]
    trouble = [line for line in flat if any(word in line.lower() for word in _TROUBLE)]
    picked = list(dict.fromkeys(trouble or flat))[-most:]
    return " | ".join(line if len(line) <= 300 else line[:297] + "..." for line in picked)


def library_path(explicit: str | None = None) -> Path:
    """``explicit`` (--genie-lib), else the Genie library the onnxruntime-qnn wheel ships."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise EngineError(f"--genie-lib {explicit!r}: no such file (give the path of {LIBRARY})")
        return path
    try:
        import onnxruntime_qnn
    except ImportError as exc:
        raise EngineError(
            f"Genie's C API needs {LIBRARY} from the onnxruntime-qnn wheel ({exc}); pip install onnxruntime-qnn, "
            "or pass --genie-lib PATH"
        ) from None
    path = Path(onnxruntime_qnn.__file__).parent / LIBRARY
    if not path.is_file():
        raise EngineError(f"the onnxruntime-qnn wheel at {path.parent} has no {LIBRARY}; pass --genie-lib PATH")
    return path


def _libc_vsnprintf() -> Callable[..., int] | None:
    """vsnprintf, to format Genie's log lines (their arguments come as a va_list); None when
    no C library here exports one (the lines are then kept unformatted).

    On Windows the UCRT's vsnprintf is an inline function of its headers, not an export, so
    the exported ``_vsnprintf`` of msvcrt (or ucrtbase) is used; a va_list is a plain pointer
    there, as it is passed here. Untried on Windows ARM64 (no device here).
    """
    candidates = (
        (("msvcrt", "_vsnprintf"), ("ucrtbase", "_vsnprintf")) if sys.platform == "win32" else ((None, "vsnprintf"),)
    )
    for library, name in candidates:
        try:
            fn = getattr(ctypes.CDLL(library), name)
        except (OSError, AttributeError):
            continue
        fn.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, _VP]
        fn.restype = ctypes.c_int
        return fn  # type: ignore[no-any-return]
    return None


class GenieLibrary:
    """The loaded library with every function this project calls declared, and its log."""

    _loaded: ClassVar[dict[Path, GenieLibrary]] = {}
    _guard = threading.Lock()

    @classmethod
    def load(cls, path: Path) -> GenieLibrary:
        with cls._guard:
            key = path.resolve()
            if key not in cls._loaded:
                cls._loaded[key] = cls(key)
            return cls._loaded[key]

    def __init__(self, path: Path) -> None:
        if sys.platform == "win32":
            os.add_dll_directory(str(path.parent))  # QnnHtp.dll and the HTP stubs live beside Genie.dll
        try:
            self.lib = ctypes.CDLL(str(path))
        except OSError as exc:
            raise EngineError(f"cannot load Genie from {path}: {exc}") from None
        if getattr(self.lib, "GenieDialog_create", None) is None:
            raise EngineError(f"{path} is not a Genie library (it has no GenieDialog_create); give {LIBRARY}")
        self.path = path
        self.log_lines: deque[str] = deque(maxlen=200)
        self._format = _libc_vsnprintf()
        self._declare()
        self._log_cb = _LOG_CB(self._on_log)  # kept alive as long as the library
        self.version = self._version()

    def _declare(self) -> None:
        i32, u32, pvp = ctypes.c_int32, ctypes.c_uint32, ctypes.POINTER(_VP)
        signatures: dict[str, list[object]] = {
            "GenieLog_create": [_VP, _LOG_CB, ctypes.c_int, pvp],
            "GenieLog_free": [_VP],
            "GenieDialogConfig_createFromJson": [ctypes.c_char_p, pvp],
            "GenieDialogConfig_bindLogger": [_VP, _VP],
            "GenieDialogConfig_bindProfiler": [_VP, _VP],
            "GenieDialogConfig_free": [_VP],
            "GenieProfile_create": [_VP, pvp],
            "GenieProfile_getJsonData": [_VP, _ALLOC_CB, pvp],
            "GenieProfile_free": [_VP],
            "GenieDialog_create": [_VP, pvp],
            "GenieDialog_query": [_VP, ctypes.c_char_p, ctypes.c_int, _QUERY_CB, _VP],
            "GenieDialog_setMaxNumTokens": [_VP, u32],
            "GenieDialog_setStopSequence": [_VP, ctypes.c_char_p],
            "GenieDialog_signal": [_VP, ctypes.c_int],
            "GenieDialog_reset": [_VP],
            "GenieDialog_setPerformancePolicy": [_VP, ctypes.c_int],
            "GenieDialog_getPerformancePolicy": [_VP, ctypes.POINTER(ctypes.c_int)],
            "GenieDialog_free": [_VP],
        }
        for name, args in signatures.items():
            fn = getattr(self.lib, name, None)
            if fn is None:
                continue  # an older Genie: calling it raises a GenieError naming it
            fn.argtypes = args
            fn.restype = i32
        for name in ("Genie_getApiMajorVersion", "Genie_getApiMinorVersion", "Genie_getApiPatchVersion"):
            fn = getattr(self.lib, name, None)
            if fn is not None:
                fn.argtypes, fn.restype = [], u32

    def _version(self) -> str:
        parts = [getattr(self.lib, f"Genie_getApi{p}Version", None) for p in ("Major", "Minor", "Patch")]
        return ".".join(str(p()) for p in parts if p is not None) if all(parts) else "unknown"

    def _on_log(self, _handle: object, fmt: bytes | None, level: int, _stamp: int, args: object) -> None:
        text = (fmt or b"").decode("utf-8", "replace")
        if self._format is not None and fmt:
            buf = ctypes.create_string_buffer(2048)
            if self._format(buf, len(buf), fmt, args) >= 0:
                text = buf.value.decode("utf-8", "replace")
        self.log_lines.append(text.strip())

    def call(self, name: str, *args: object) -> int:
        """Call ``name``; GenieError unless it returns SUCCESS or a warning."""
        fn = getattr(self.lib, name, None)
        if fn is None:
            raise EngineError(f"{self.path} has no {name} (Genie API {self.version}); use a newer Genie build")
        mark = len(self.log_lines)
        if name in _PRINTS_TO_STDERR:
            status, printed = _capturing_stderr(lambda: int(fn(*args)))
            self.log_lines.extend(printed)
        else:
            status = int(fn(*args))
        if status < 0:
            raise GenieError(name, status, list(self.log_lines)[mark:] or list(self.log_lines)[-3:])
        return status

    def log_handle(self, level: int) -> ctypes.c_void_p:
        handle = _VP()
        self.call("GenieLog_create", None, self._log_cb, level, ctypes.byref(handle))
        return handle


# Genie prints why a config or a model is refused (schema errors, I/O names) to stderr
# itself, not through the logger: those calls' stderr is captured into the log.
_PRINTS_TO_STDERR = ("GenieDialogConfig_createFromJson", "GenieDialog_create")


def _capturing_stderr(fn: Callable[[], int]) -> tuple[int, list[str]]:
    """``fn()`` with file descriptor 2 going to a temp file; (its result, the lines it printed).
    What was printed is written on to the real stderr as well, so nothing is hidden."""
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            result = fn()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        printed = sink.read()
    if printed:
        os.write(2, printed)
    return result, printed.decode("utf-8", "replace").splitlines()


@contextlib.contextmanager
def _sigint_aborts(interrupted: list[int]) -> Iterator[None]:
    """While the block runs (in the main thread), Ctrl-C is noted in ``interrupted`` instead of raised."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: interrupted.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclass
class Piece:
    """One callback of a query: its text, sentence code and arrival time (client perf_counter_ns)."""

    text: str
    code: str
    at_ns: int


class Dialog:
    """One Genie dialog: config, logger and profiler bound, created once, queried many times."""

    def __init__(self, lib: GenieLibrary, config: dict[str, object], log_level: int = LOG_WARN) -> None:
        self.lib = lib
        self._handles: list[tuple[str, ctypes.c_void_p]] = []
        self._config = _VP()
        try:
            self._log = lib.log_handle(log_level)
            self._handles.append(("GenieLog_free", self._log))
            lib.call("GenieDialogConfig_createFromJson", json.dumps(config).encode(), ctypes.byref(self._config))
            self._handles.append(("GenieDialogConfig_free", self._config))
            lib.call("GenieDialogConfig_bindLogger", self._config, self._log)
            self._profile = _VP()
            lib.call("GenieProfile_create", None, ctypes.byref(self._profile))
            self._handles.append(("GenieProfile_free", self._profile))
            lib.call("GenieDialogConfig_bindProfiler", self._config, self._profile)
            self._dialog = _VP()
            lib.call("GenieDialog_create", self._config, ctypes.byref(self._dialog))
            self._handles.append(("GenieDialog_free", self._dialog))
        except BaseException:
            self.close()
            raise

    def query(self, prompt: str, on_piece: Callable[[Piece], bool]) -> int:
        """Run a query; ``on_piece`` sees each callback as it comes and returns False to abort.
        Returns Genie's status (1 = WARNING_ABORTED when aborted).

        Ctrl-C during a query aborts it at the next token and is raised once Genie has
        returned: a KeyboardInterrupt raised inside a ctypes callback would be printed and
        dropped ("Exception ignored on calling ctypes callback"), and the query would go on.
        """
        lib, dialog = self.lib, self._dialog
        interrupted: list[int] = []

        @_QUERY_CB  # type: ignore[untyped-decorator]
        def callback(response: bytes | None, code: int, _user: object) -> None:
            at = time.perf_counter_ns()
            text = (response or b"").decode("utf-8", "replace")
            if interrupted or not on_piece(Piece(text, SENTENCE.get(code, str(code)), at)):
                lib.lib.GenieDialog_signal(dialog, ACTION_ABORT)

        with _sigint_aborts(interrupted):
            status = lib.call("GenieDialog_query", dialog, prompt.encode("utf-8"), 0, callback, None)
        if interrupted:
            raise KeyboardInterrupt
        return status

    def set_max_tokens(self, n: int) -> None:
        self.lib.call("GenieDialog_setMaxNumTokens", self._dialog, n)

    def set_stop_sequences(self, stops: list[str]) -> None:
        self.lib.call("GenieDialog_setStopSequence", self._dialog, json.dumps({"stop-sequence": stops}).encode())

    def abort(self) -> None:
        self.lib.call("GenieDialog_signal", self._dialog, ACTION_ABORT)

    def reset(self) -> None:
        self.lib.call("GenieDialog_reset", self._dialog)

    def set_policy(self, name: str) -> None:
        if name not in POLICIES:
            raise EngineError(f"Genie performance policy {name!r} is unknown; expected one of {', '.join(POLICIES)}")
        self.lib.call("GenieDialog_setPerformancePolicy", self._dialog, POLICIES[name])

    def policy(self) -> str:
        value = ctypes.c_int()
        self.lib.call("GenieDialog_getPerformancePolicy", self._dialog, ctypes.byref(value))
        return next((k for k, v in POLICIES.items() if v == value.value), str(value.value))

    def profile_json(self) -> str:
        """The profile Genie collected (GenieProfile_getJsonData), as text."""
        buffers: list[ctypes.Array[ctypes.c_char]] = []

        @_ALLOC_CB  # type: ignore[untyped-decorator]
        def alloc(size: int, out: ctypes._Pointer[ctypes.c_void_p]) -> None:
            buf = ctypes.create_string_buffer(size + 1)
            buffers.append(buf)
            out[0] = ctypes.addressof(buf)

        data = _VP()
        self.lib.call("GenieProfile_getJsonData", self._profile, alloc, ctypes.byref(data))
        return ctypes.string_at(data.value).decode("utf-8", "replace") if data.value else ""

    def close(self) -> None:
        """Free the dialog, profile, config and log, newest first (errors are not raised)."""
        while self._handles:
            name, handle = self._handles.pop()
            fn = getattr(self.lib.lib, name, None)
            if fn is not None and handle.value:
                fn(handle)


CAPI_CLOCK = "client perf_counter_ns at each Genie query callback (one per token); Genie's profile kept beside it"


class CapiBackend:
    """The Genie engine's C API backend: one Dialog over the config, queried per generation."""

    name = "capi"

    def __init__(self, config: GenieConfig, library: str | None, perf_mode: str | None) -> None:
        self.lib = GenieLibrary.load(library_path(library))
        doc = json.loads(config.path.read_text(encoding="utf-8"))
        cwd = os.getcwd()
        try:
            os.chdir(config.path.parent)  # Genie resolves the config's relative paths against the working dir
            self.dialog = Dialog(self.lib, doc)
        except GenieError as exc:
            raise ModelError(f"Genie config {str(config.path)!r}: {exc}") from None
        finally:
            os.chdir(cwd)
        self.context, self.config_name = config.context_size, config.path.name
        simulated = config.on_htp and htp_simulated()  # x86_64: the HTP simulator
        self.provider = config.backend_type + ("-simulator" if simulated else "")
        self.versions = {"genie": self.lib.version}
        with contextlib.suppress(ImportError):
            from importlib.metadata import version

            self.versions["onnxruntime-qnn"] = version("onnxruntime-qnn")
        self.details = {"genie library": str(self.lib.path), "htp": "simulator" if simulated else "device"}
        self._apply_policy(perf_mode)

    def _apply_policy(self, perf_mode: str | None) -> None:
        """GenieDialog_setPerformancePolicy with the HTP perf mode, then read back what Genie holds."""
        if perf_mode and perf_mode != "default":
            self.dialog.set_policy(perf_mode)
        self.details["performance policy"] = self.dialog.policy()

    def generate(self, prompt: str, prompt_tokens: int, max_new_tokens: int, on_token: OnToken | None) -> Generation:
        """Phases: setup (reset, setMaxNumTokens), prefill (Genie tokenizes and prefills: query
        to the first token), decode (first to last token), finish (the last token to Query's
        return: Genie's end callback)."""
        submit = time.perf_counter_ns()
        self.dialog.reset()  # every generation starts from an empty KV cache, as AppBuilder's Query does
        self.dialog.set_max_tokens(max_new_tokens)
        stamps: list[int] = []
        pieces: list[str] = []
        raised: list[BaseException] = []

        def on_piece(piece: Piece) -> bool:
            if piece.code in ("end", "abort") and not piece.text:
                return True
            try:
                if on_token is not None:
                    on_token()
            except BaseException as exc:  # e.g. the server's ClientGone: abort the query
                raised.append(exc)
                return False
            stamps.append(time.perf_counter_ns())
            pieces.append(piece.text)
            return True

        queried = time.perf_counter_ns()
        status = self.dialog.query(prompt, on_piece)
        end = time.perf_counter_ns()
        if raised:
            raise raised[0]
        if status == 4:  # WARNING_CONTEXT_EXCEEDED
            raise EngineError(
                f"Genie: a {prompt_tokens}-token prompt with {max_new_tokens} new tokens exceeds the model's context "
                f"of {self.context} tokens (dialog.context.size in {self.config_name})"
            )
        profile = parse_profile(self.dialog.profile_json())
        device = {"client_latency_ms": (end - submit) / 1e6, "client_callbacks": float(len(stamps))}
        if len(stamps) != profile.generated_tokens or not stamps:
            # a callback carried more or less than one token: place them from the profile instead
            return profile_generation(
                profile, prompt_tokens, (submit, queried, end), max_new_tokens, CLOCK, "".join(pieces), device
            )
        return Generation(
            prompt_tokens=prompt_tokens,
            requested_new_tokens=max_new_tokens,
            submit_ns=submit,
            token_ns=tuple(stamps),
            stop_reason="eos" if len(stamps) < max_new_tokens else "budget",
            clock=CAPI_CLOCK,
            device={**device, **profile_figures(profile)},
            end_ns=end,
            text="".join(pieces),
            phases=phases_of(
                submit, [("setup", queried), ("prefill", stamps[0]), ("decode", stamps[-1]), ("finish", end)]
            ),
        )

    def close(self) -> None:
        self.dialog.close()
