"""npuperf: a pytest latency regression suite for on-device LLM inference."""

from __future__ import annotations

__version__ = "0.1.0"
