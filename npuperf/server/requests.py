"""The request model of /api/npu/infer and the handlers that turn bad input into 400/422."""

from __future__ import annotations

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from npuperf import api
from npuperf.server.responses import error


def infer_request_model(largest_budget: int) -> type[BaseModel]:
    """The body of /api/npu/infer; ``largest_budget`` is the largest max_new_tokens accepted (a setting)."""

    class InferRequest(BaseModel):
        # strict: "32" is not a number of tokens, and true is not a temperature
        model_config = ConfigDict(strict=True)

        prompt: str = Field(min_length=1)
        max_new_tokens: int = Field(api.SEED_NEW_TOKENS, ge=1, le=largest_budget)
        temperature: float = Field(api.SEED_TEMPERATURE, ge=0.0, le=2.0)

        @field_validator("prompt")
        @classmethod
        def _not_blank(cls, value: str) -> str:
            if not value.strip():
                raise ValueError("must not be blank")
            return value

    return InferRequest


async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """400 for a body that is not JSON, else 422 naming each field and what is wrong with it."""
    errors = exc.errors()
    broken = [e for e in errors if e.get("type") == "json_invalid"]
    if broken:
        reason = (broken[0].get("ctx") or {}).get("error", "JSON decode error")
        return error(400, f"body: not valid JSON ({reason}); send a JSON object", detail=jsonable_encoder(errors))
    problems = []
    for e in errors:
        loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "query")]
        problems.append(f"{'.'.join(loc) or 'body'}: {e.get('msg', 'invalid')}")
    return error(422, "; ".join(problems), detail=jsonable_encoder(errors))


async def crashed(_request: Request, exc: Exception) -> JSONResponse:
    """Any other exception: 500 naming it (the service keeps serving)."""
    return error(500, f"internal error: {type(exc).__name__}: {exc}")
