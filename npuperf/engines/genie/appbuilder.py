"""The Genie engine's AppBuilder backend: ``qai_appbuilder.GenieContext``, as the team's app runs it.

qai-appbuilder has wheels only for Windows on ARM64 (and ARM64EC) and Linux aarch64; on
other machines this backend is contract-tested against tests/fake_qai_appbuilder.py, which
follows the real signatures (``GenieContext(config)``, ``SetParams(max_length, temp, top_k,
top_p)`` as strings, ``Query(prompt, callback) -> bool``, ``GetProfile() -> str``,
``TokenLength(text)``, ``Stop()``).

What is measured, and from which clock:

- latency: the client's wall time around ``Query`` (perf_counter_ns);
- TTFT, TPOT, token counts and rates: Genie's own profile (``GetProfile()``, device clock).
  The text callback is polled (every 10-100 ms depending on the version), so the client's
  first-text time is kept only as a coarse cross-check.

The token budget goes through ``SetParams``; the wrapper enforces it by counting re-encoded
text and calling ``Stop()``, so a run can end a little past the budget (speculative dialogs
accept several tokens per pass) or before it (EOS). The Generation carries the real count.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from npuperf.engines.base import EngineError, Generation, ModelError, OnToken
from npuperf.engines.genie.config import GenieConfig
from npuperf.engines.genie.profile import CLOCK, init_time_ms, parse_profile, profile_generation


class AppBuilderBackend:
    """A GenieContext over the config (the dialog is created in the constructor)."""

    name = "appbuilder"

    def __init__(self, module: Any, config: GenieConfig, sampling: tuple[str, str, str]) -> None:
        self.sampling = sampling
        try:
            with contextlib.chdir(config.path.parent):
                self.ctx = module.GenieContext(str(config.path.resolve()))
        except Exception as exc:  # the extension raises RuntimeError (or worse) for any failure
            raise ModelError(f"GenieContext({str(config.path)!r}) failed: {exc}") from None
        init_ms = init_time_ms(self.ctx.GetProfile())
        self.provider = config.backend_type
        self.versions = {"qai-appbuilder": str(getattr(module, "__version__", "unknown"))}
        self.details = {"device_init_ms": "not reported" if init_ms is None else f"{init_ms:.1f}"}

    def generate(self, prompt: str, prompt_tokens: int, max_new_tokens: int, on_token: OnToken | None) -> Generation:
        ctx = self.ctx
        submit = time.perf_counter_ns()
        if ctx.SetParams(str(max_new_tokens), *self.sampling) is False:
            raise EngineError(f"Genie SetParams({max_new_tokens!r}, ...) failed")
        texts = _Texts(on_token, ctx.Stop)
        queried = time.perf_counter_ns()
        ok = ctx.Query(prompt, texts.callback)
        end = time.perf_counter_ns()
        if texts.raised:
            raise texts.raised[0]
        if ok is False:
            raise EngineError(f"Genie Query failed for a {prompt_tokens}-token prompt")
        device = {"client_latency_ms": (end - submit) / 1e6, "client_callbacks": float(len(texts.arrivals))}
        if texts.arrivals:
            device["client_first_text_ms"] = (texts.arrivals[0] - submit) / 1e6
        profile = parse_profile(ctx.GetProfile())
        return profile_generation(
            profile, prompt_tokens, (submit, queried, end), max_new_tokens, CLOCK, "".join(texts.pieces), device
        )

    def close(self) -> None:
        """Release the dialog (the wrapper frees it when the object goes)."""
        self.ctx = None


class _Texts:
    """Query's callback: the arrival time and text of each piece, and ``on_token`` called first.

    An exception from ``on_token`` (the server's ClientGone) must not cross the extension's
    C++ frames: it is kept, the dialog is asked to stop (Stop(), and the callback returns
    False), and ``generate`` raises it once Query has returned.
    """

    def __init__(self, on_token: OnToken | None, stop: Callable[[], object]) -> None:
        self.on_token, self.stop = on_token, stop
        self.arrivals: list[int] = []
        self.pieces: list[str] = []
        self.raised: list[BaseException] = []

    def callback(self, text: str) -> bool:
        if self.raised:
            return False
        try:
            if self.on_token is not None:
                self.on_token()
        except BaseException as exc:  # stop generating; re-raised after Query
            self.raised.append(exc)
            self.stop()
            return False
        self.arrivals.append(time.perf_counter_ns())
        self.pieces.append(text)
        return True
