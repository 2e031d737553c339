"""The suite's sections: one object per part of a run, owned by the session.

- ``run``: settings, paths, progress, notes, the session memo, record-and-fail;
- ``latency``: the warm engine, prompts, baseline lookup, measure, verify, the grid test,
  load and the cold call;
- ``npu``: the QNN probes and their checks, the Genie config and its checks;
- ``service``: connecting to (or starting) the backend service, the HTTP checks and table;
- ``outputs``: the results JSON, baseline recording, and the one summary that both the
  terminal and the HTML report show;
- ``session``: PerfSession, which owns the sections and is what the tests receive.

With ``npuperf/plugin.py`` and ``perf_tests/``, the only code that imports pytest.
"""
