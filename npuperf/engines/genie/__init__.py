"""Qualcomm Genie: ``--engine genie --model path/to/genie_config.json``.

Two backends run the same dialog and produce the same ``Generation``
(``--genie-backend {auto,appbuilder,capi}``; auto takes AppBuilder where it is installed):

- ``appbuilder`` (appbuilder.py): ``qai_appbuilder.GenieContext``, what the
  team's app uses. Wheels exist only for Windows on ARM64 and Linux aarch64; elsewhere it is
  contract-tested against tests/fake_qai_appbuilder.py. Its text callback is polled every
  ~100 ms, so TTFT and TPOT come from Genie's profile (device clock).
- ``capi`` (capi.py): Genie's own C API through ctypes, from the library the
  onnxruntime-qnn wheel ships (``libGenie.so``; ``Genie.dll`` on Windows ARM64) or
  ``--genie-lib``. Its query callback comes once per token, so per-token times are the
  client's. On x86_64 its QnnHtp backend is the HTP simulator: a real dialog, simulator times.

config.py reads the bundle without loading it, profile.py reads Genie's profile JSON (both
backends use them), engine.py holds the engine that picks a backend. Nothing here imports
the engine's backends but the engine, and only when it opens one.
"""
