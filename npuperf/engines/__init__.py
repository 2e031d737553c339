"""Engines: one module per runtime behind the Engine protocol (base.py), registered by name.

- ``ort_genai``: onnxruntime-genai (the embedded model; ``--ep qnn`` for the QNN EP);
- ``genie``: Qualcomm Genie, through qai-appbuilder or Genie's C API (a package: config, profile,
  engine, and the two backends);
- ``http``: the backend service over HTTP, as one more engine;
- ``faults``: the slowdown and stall canaries, wrapped around any engine;
- ``hf_tokenizer``: a tokenizer.json through the tokenizers package.

Engines know nothing of pytest, nor of the checks that judge them.
"""
