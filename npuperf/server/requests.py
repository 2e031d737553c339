"""The request model of /api/npu/infer and the handlers that turn bad input into 400/422.

Whatever a client sends, the answer is valid JSON in UTF-8: the errors echo no input back
as it came (a NaN, an infinity or a lone surrogate in a field used to crash the handler
itself into a 500), and every message names the field and what is wrong with it.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.exceptions import HTTPException

from npuperf.server.responses import error
from npuperf.service import api

FIELDS = ("prompt", "max_new_tokens", "temperature")


def infer_request_model(largest_budget: int) -> type[BaseModel]:
    """The body of /api/npu/infer; ``largest_budget`` is the largest max_new_tokens accepted (a setting)."""

    class InferRequest(BaseModel):
        # strict: "32" is not a number of tokens, and true is not a temperature;
        # forbid: a typo ("max_tokens") is an error, not the default silently
        model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)

        prompt: str = Field(min_length=1)
        max_new_tokens: int = Field(api.SEED_NEW_TOKENS, ge=1, le=largest_budget)
        temperature: float = Field(api.SEED_TEMPERATURE, ge=0.0, le=2.0)

        @field_validator("prompt")
        @classmethod
        def _readable(cls, value: str) -> str:
            return check_prompt_text(value)

    return InferRequest


def check_prompt_text(value: str) -> str:
    """A prompt must be valid Unicode text that is not blank (ValueError says why)."""
    if not value.strip():
        raise ValueError("must not be blank")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"is not valid Unicode: a lone surrogate at character {exc.start}") from None
    return value


def printable(value: Any) -> Any:
    """``value`` with what JSON in UTF-8 cannot carry made visible: non-finite numbers as
    text, lone surrogates as backslash escapes; recursively through lists and dicts."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {printable(k): printable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [printable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return printable(str(value))


def _problem(e: dict[str, Any]) -> str:
    loc = [str(printable(p)) for p in e.get("loc", ()) if p not in ("body", "query")]
    where = ".".join(loc) or "body"
    if e.get("type") == "extra_forbidden":
        return f"{where}: unknown field; the accepted fields are {', '.join(FIELDS)}"
    return f"{where}: {printable(e.get('msg', 'invalid'))}"


async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """400 for a body that is not JSON, else 422 naming each field and what is wrong with it."""
    errors = [{k: v for k, v in e.items() if k in ("type", "loc", "msg")} for e in exc.errors()]
    detail = printable(errors)
    broken = [e for e in exc.errors() if e.get("type") == "json_invalid"]
    if broken:
        reason = printable((broken[0].get("ctx") or {}).get("error", "JSON decode error"))
        return error(400, f"body: not valid JSON ({reason}); send a JSON object", detail=detail)
    return error(422, "; ".join(_problem(e) for e in exc.errors()), detail=detail)


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's own errors (404, 405, a body it could not parse) in this API's format."""
    message = str(printable(exc.detail))
    if exc.status_code == 400 and request.method == "POST":
        cause = exc.__cause__
        why = f"{type(cause).__name__}: {printable(str(cause))[:200]}" if cause else message
        message = f"body: not valid JSON ({why}); send a JSON object"
    return error(exc.status_code, message, headers=getattr(exc, "headers", None))


async def crashed(_request: Request, exc: Exception) -> JSONResponse:
    """Any other exception: 500 naming it (the service keeps serving)."""
    return error(500, f"internal error: {type(exc).__name__}: {printable(str(exc))}")
