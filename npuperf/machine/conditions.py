"""What can change a laptop's NPU and CPU speed without any code change, as the OS shows it.

Recorded with every run (the reports' environment table, the results JSON) so that a night
that was slower on battery, in a power-saving plan or hot says so. The settled ones (power
source, power plan, governor) are part of each case's provenance, so a baseline recorded on
mains and a run on battery say "changed since the baseline: power battery -> mains".
Readings (frequency, temperatures) change by the second and are shown, never compared.

Every probe is best effort: what the OS does not expose is left out, never guessed.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import psutil

SETTLED = ("power", "power plan", "cpu governor")


def now() -> dict[str, str]:
    """The run's conditions, by name (only those this OS exposes)."""
    out: dict[str, str] = {}
    battery = _battery()
    if battery is not None:
        out["power"] = battery
    plan = _windows_power_plan()
    if plan:
        out["power plan"] = plan
    governor = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    if governor:
        out["cpu governor"] = governor
    with contextlib.suppress(Exception):  # psutil raises on platforms without the counter
        freq = psutil.cpu_freq()
        if freq is not None and freq.current:
            out["cpu MHz"] = f"{freq.current:.0f}" + (f" (max {freq.max:.0f})" if freq.max else "")
    temps = _temperatures()
    if temps:
        out["temperatures C"] = temps
    return out


def settled(conditions: dict[str, str]) -> dict[str, str]:
    """Those conditions that hold for a whole run (the provenance keeps them)."""
    return {k: v for k, v in conditions.items() if k in SETTLED}


def _battery() -> str | None:
    with contextlib.suppress(Exception):
        battery = psutil.sensors_battery()
        if battery is None:
            return "mains (no battery)"
        return "mains" if battery.power_plugged else f"battery ({battery.percent:.0f}%)"
    return None


def _windows_power_plan() -> str:
    if sys.platform != "win32":
        return ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["powercfg", "/getactivescheme"], capture_output=True, text=True, timeout=5).stdout
        # "Power Scheme GUID: 381b4222-...  (Balanced)"
        if "(" in out:
            return out[out.rindex("(") + 1 : out.rindex(")")].strip()
    return ""


def _read(path: str) -> str:
    with contextlib.suppress(OSError):
        return Path(path).read_text(encoding="utf-8").strip()
    return ""


def _temperatures() -> str:
    read = getattr(psutil, "sensors_temperatures", None)
    if read is None:
        return ""
    with contextlib.suppress(Exception):
        groups = read()
        hottest = {name: max(t.current for t in entries) for name, entries in groups.items() if entries}
        return ", ".join(f"{name} {value:.0f}" for name, value in sorted(hottest.items()))
    return ""
