"""Models and their physics: the synthetic models this project builds, and what a model costs.

- ``synth``: the embedded decoder (tiny-qwen2) built with transformers and onnxruntime-genai's builder;
- ``twins``: shape twins of real models (``--model synthetic:<preset>``), built once into a cache;
- ``qdq_block``: the static-shape QDQ decoder block of the QNN checks;
- ``genie_model``, ``genie_build``: genie-tiny, the Qwen2-shaped bundle Genie runs for real;
- ``files``: a model's identity on disk (content hash over its files);
- ``floor``: the decode floor, the bytes a decode step reads over the memory bandwidth.

``npuperf synth`` (npuperf/cli/synth.py) is the command that builds them.
"""
