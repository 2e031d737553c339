"""NPU facts and probes: where a model runs and in which mode.

- ``htp``: facts about the Hexagon HTP several layers share (its performance modes);
- ``qnn``: ONNX Runtime + onnxruntime-qnn in fresh processes: placement, perf mode, compile cache;
- ``checks``: the NPU decisions over what the probes and a Genie config report (pure).
"""
