"""Facts about the Hexagon HTP that several layers share (settings, engines, probes)."""

from __future__ import annotations

# The QNN HTP performance modes, as the QNN EP's htp_performance_mode and Genie's
# perf_profile spell them.
PERF_MODES = (
    "burst",
    "balanced",
    "default",
    "high_performance",
    "high_power_saver",
    "low_balanced",
    "low_power_saver",
    "power_saver",
    "extreme_power_saver",
    "sustained_high_performance",
)
