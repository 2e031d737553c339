"""A stand-in for ``qai_appbuilder`` on machines without its wheel: the genie engine's contract.

qai-appbuilder ships no x86_64 wheel, so the genie engine is tested here against this
fake, which follows the real module's documented signatures and behaviour
(qai_appbuilder.GenieContext over the GenieBuilder extension):

- ``GenieContext(config: str)`` reads the JSON config; relative paths inside it resolve
  against the *working directory*, as Genie's do; a missing file raises RuntimeError;
- ``SetParams(max_length: str, temp: str, top_k: str, top_p: str) -> bool``: strings only
  (pybind11 raises TypeError for anything else); max_length counts *generated* tokens
  and is enforced by calling ``Stop()`` once that many have come;
- ``Query(prompt: str, callback: Callable[[str], bool]) -> bool`` blocks; the dialog is
  reset first; generation runs on another thread and the callback is polled with the
  text accumulated since the last poll;
- ``GetProfile() -> str``: JSON with ``components[0].events``, one ``GenieDialog_query``
  event per query carrying time-to-first-token / token-generation-time (microseconds),
  rates and token counts;
- ``TokenLength(text) -> int`` and ``Stop() -> bool``.

The "device" is simulated with sleeps, and the profile reports the fake's own measured
durations: ``SIM`` sets them, and ``eos_after`` / ``accept`` (tokens per decode pass, as
a self-speculative dialog accepts several) shape early stops and budget overshoot.
It is not thread-safe, like the real one: a second concurrent Query raises.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__version__ = "fake-2.38.0"


@dataclass
class Sim:
    prefill_us_per_token: float = 50.0
    first_token_us: float = 1000.0
    token_us: float = 400.0
    poll_s: float = 0.005
    eos_after: int | None = None
    accept: int = 1
    fail_init: str | None = None
    burn_threads: int = 0  # threads that keep CPU cores busy during a query: a CPU fallback's signature


SIM = Sim()
LIVE: list[int] = []  # ids of contexts not yet released
QUERIES: list[str] = []


def _burn(worker: threading.Thread) -> None:
    """Keep one core busy while ``worker`` runs (sha256 of a large buffer releases the GIL)."""
    import hashlib

    block = b"\0" * (1 << 20)
    while worker.is_alive():
        hashlib.sha256(block).digest()


def reset() -> None:
    global SIM
    SIM = Sim()
    LIVE.clear()
    QUERIES.clear()


class GenieContext:
    def __init__(self, config: str) -> None:
        if not isinstance(config, str):
            raise TypeError("GenieContext(): incompatible constructor arguments; config must be str")
        if SIM.fail_init:
            raise RuntimeError(SIM.fail_init)
        path = Path(config)
        if not path.is_file():
            raise RuntimeError(f"Failed to open Genie config file: {config}")
        doc = json.loads(path.read_text(encoding="utf-8"))
        engine = doc["dialog"]["engine"]
        # Genie resolves relative paths against the process working directory.
        for name in engine["model"]["binary"]["ctx-bins"]:
            if not Path(name).is_file():
                raise RuntimeError(f"Failed to create the Genie Dialog: cannot open {name}")
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(doc["dialog"]["tokenizer"]["path"])
        self._max_length = 4096
        self._stop = threading.Event()
        self._busy = threading.Lock()
        self._events: list[dict[str, object]] = [
            {"type": "GenieDialog_create", "duration": 1_500_000, "init-time": {"value": 1_500_000, "unit": "us"}}
        ]
        LIVE.append(id(self))

    def __del__(self) -> None:
        if id(self) in LIVE:
            LIVE.remove(id(self))

    def SetParams(self, max_length: str, temp: str, top_k: str, top_p: str) -> bool:
        if not all(isinstance(v, str) for v in (max_length, temp, top_k, top_p)):
            raise TypeError("SetParams(): incompatible function arguments; all four must be str")
        self._max_length = int(max_length)
        float(temp), int(top_k), float(top_p)
        return True

    def TokenLength(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False).ids)

    def Stop(self) -> bool:
        self._stop.set()
        return True

    def GetProfile(self) -> str:
        # the layout GenieProfile_getJsonData writes (tests/data/genie/profile-genie-tiny-simulator.json)
        header = {"header_version": {"major": 0, "minor": 1, "patch": 0}, "artifact_type": "GENIE_PROFILE"}
        components = [{"name": "dialog0", "type": "dialog", "events": self._events}]
        return json.dumps({"header": header, "metadata": {"timestamp": 0}, "components": components})

    def Query(self, prompt: str, callback: Callable[[str], bool]) -> bool:
        if not self._busy.acquire(blocking=False):
            raise RuntimeError("GenieContext is not thread-safe: Query called while another query runs")
        try:
            return self._query(prompt, callback)
        finally:
            self._busy.release()

    def _query(self, prompt: str, callback: Callable[[str], bool]) -> bool:
        QUERIES.append(prompt)
        self._stop.clear()  # GenieDialog_reset: no state carries over
        n_prompt = self.TokenLength(prompt)
        pending: list[str] = []
        lock = threading.Lock()
        record: dict[str, float] = {}

        def generate() -> None:
            start = time.perf_counter()
            time.sleep((SIM.first_token_us + SIM.prefill_us_per_token * n_prompt) / 1e6)
            first = time.perf_counter()
            produced = 1
            with lock:
                pending.append("好")
            limit = SIM.eos_after
            while not self._stop.is_set() and produced < self._max_length and (limit is None or produced < limit):
                time.sleep(SIM.token_us / 1e6)
                step = SIM.accept if limit is None else min(SIM.accept, limit - produced)
                produced += step
                with lock:
                    pending.append("好" * step)
                if produced >= self._max_length:
                    self.Stop()  # the wrapper stops once max_length tokens have come
            last = time.perf_counter()
            record.update(ttft=(first - start) * 1e6, gen=(last - first) * 1e6, n=produced)

        worker = threading.Thread(target=generate)
        burners = [threading.Thread(target=_burn, args=(worker,)) for _ in range(SIM.burn_threads)]
        worker.start()
        for burner in burners:
            burner.start()
        while worker.is_alive():
            time.sleep(SIM.poll_s)
            with lock:
                text, pending[:] = "".join(pending), []
            if text:
                callback(text)
        worker.join()
        with lock:
            rest = "".join(pending)
        if rest:
            callback(rest)
        n = int(record["n"])
        gen_s = record["gen"] / 1e6
        self._events.append(
            {
                "type": "GenieDialog_query",
                "duration": int(record["ttft"] + record["gen"]),
                "num-prompt-tokens": {"value": n_prompt, "unit": ""},
                "prompt-processing-rate": {"value": n_prompt / (record["ttft"] / 1e6), "unit": "toks/sec"},
                "time-to-first-token": {"value": int(record["ttft"]), "unit": "us"},
                "num-generated-tokens": {"value": n, "unit": ""},
                "token-generation-rate": {"value": (n - 1) / gen_s if gen_s > 0 else 0.0, "unit": "toks/sec"},
                "token-generation-time": {"value": int(record["gen"]), "unit": "us"},
            }
        )
        return True
