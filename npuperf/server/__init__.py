"""The reference backend: any npuperf engine behind the team's HTTP API (FastAPI + uvicorn).

    python -m npuperf.server                       # the embedded model on 127.0.0.1:8000
    python -m npuperf.server --engine genie --model C:/models/Qwen2.0-7B-SSD/genie_config.json --port 8080

Endpoints (docs/api.md is the contract, so a team can check its own backend against it):

- ``GET /api/health``: engine, model, context length, breaker and queue state;
- ``POST /api/npu/infer``: ``{"prompt": "你好", "max_new_tokens": 32, "temperature": 0.7}``
  -> text, token counts and the server's own timings;
- ``POST /api/npu/infer/stream``: the same as server-sent events, one ``token`` event per
  token, then ``done`` with the full answer, so TTFT can be measured over HTTP;
- ``GET /api/npu/benchmark?prompt=&max_new_tokens=&runs=``: in-process latency summary.

It binds 127.0.0.1 unless told otherwise, validates input (422 naming the field, 413 for an
oversized body, a prompt over the model's context is a 422 with the limit), runs one
generation at a time (Genie is not thread-safe) behind a bounded queue with a timeout,
and has a circuit breaker with the team's 2000 ms threshold: after N consecutive slow
requests it answers 503 with Retry-After, then half-opens after a cool-down. Any bad
request gets an answer and the service keeps serving.

The parts, each in its own module:

- ``config``: ServerConfig, every command-line option's value;
- ``gate``: one engine thread behind a bounded queue (EngineGate);
- ``backend``: what the endpoints do, without HTTP routing (admit, generate, health, benchmark);
- ``responses``: the JSON answers, and the one mapping from an engine error to a response;
- ``requests``: the request model and the validation handler;
- ``stream``: the server-sent events of /api/npu/infer/stream;
- ``app``: the FastAPI app that wires the above to the endpoints; ``body_limit``: the 413 middleware;
- ``launch``: the listening socket, the server in a thread or a child process;
- ``cli``: ``python -m npuperf.server``.

Importing this package does not import FastAPI: the suite only needs ``launch``.
"""
