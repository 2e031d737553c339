"""The backend API's contract (docs/api.md): endpoint paths and the team's seed request.

The one place for the literals the reference server serves, the http engine and the
service client call, and the service checks judge.

>>> SEED_REQUEST.decode()
'{"prompt":"你好","max_new_tokens":32,"temperature":0.7}'
"""

from __future__ import annotations

import json
from typing import Any

HEALTH = "/api/health"
INFER = "/api/npu/infer"
INFER_STREAM = "/api/npu/infer/stream"
BENCHMARK = "/api/npu/benchmark"

# The team's app sends this request; the suite sends it byte for byte (UTF-8, no spaces).
SEED_PROMPT = "你好"
SEED_NEW_TOKENS = 32
SEED_TEMPERATURE = 0.7


def infer_payload(prompt: str, max_new_tokens: int, temperature: float = SEED_TEMPERATURE) -> dict[str, Any]:
    """The JSON body of /api/npu/infer (and its stream)."""
    return {"prompt": prompt, "max_new_tokens": max_new_tokens, "temperature": temperature}


SEED_REQUEST = json.dumps(
    infer_payload(SEED_PROMPT, SEED_NEW_TOKENS), ensure_ascii=False, separators=(",", ":")
).encode()
