"""How the reference server runs: every field is a command-line option of ``python -m npuperf.server``."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True)
class ServerConfig:
    """The server's limits and breaker settings, validated on construction."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_new_tokens: int = 1024
    max_body_bytes: int = 64 * 1024
    max_queue: int = 16
    queue_timeout_s: float = 30.0
    read_timeout_s: float = 10.0  # longest wait for a request's headers, or for the next part of its body
    breaker_ms: float = 2000.0
    breaker_trip_after: int = 3
    breaker_cooldown_s: float = 30.0
    warmup: int = 2
    benchmark_max_runs: int = 50
    docs: bool | None = None  # /docs and /openapi.json; None: only when bound to loopback

    def __post_init__(self) -> None:
        for name in ("max_new_tokens", "max_body_bytes", "max_queue", "breaker_trip_after", "benchmark_max_runs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        for name in ("queue_timeout_s", "read_timeout_s", "breaker_ms"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a number > 0, got {value:g}")
        if not math.isfinite(self.breaker_cooldown_s) or self.breaker_cooldown_s < 0:
            raise ValueError(f"breaker_cooldown_s must be a number >= 0, got {self.breaker_cooldown_s:g}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")

    @property
    def loopback(self) -> bool:
        """Is the server bound to this machine only?"""
        if self.host in LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def serves_docs(self) -> bool:
        """/docs and /openapi.json: on loopback by default, elsewhere only when asked."""
        return self.loopback if self.docs is None else self.docs
