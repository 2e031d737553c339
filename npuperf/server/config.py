"""How the reference server runs: every field is a command-line option of ``python -m npuperf.server``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerConfig:
    """The server's limits and breaker settings, validated on construction."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_new_tokens: int = 1024
    max_body_bytes: int = 64 * 1024
    max_queue: int = 16
    queue_timeout_s: float = 30.0
    breaker_ms: float = 2000.0
    breaker_trip_after: int = 3
    breaker_cooldown_s: float = 30.0
    warmup: int = 2
    benchmark_max_runs: int = 50

    def __post_init__(self) -> None:
        for name in ("max_new_tokens", "max_body_bytes", "max_queue", "breaker_trip_after", "benchmark_max_runs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        if self.queue_timeout_s <= 0 or self.breaker_ms <= 0:
            raise ValueError("queue_timeout_s and breaker_ms must be > 0")
