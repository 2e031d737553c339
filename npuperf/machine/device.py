"""The device fingerprint baselines are keyed by: OS, architecture, CPU/SoC model, cores.

Kernel and OS patch versions are left out on purpose: they change weekly and would
orphan every baseline, while the processor decides the numbers.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from pathlib import Path


def cpu_model() -> str:
    """The CPU or SoC marketing name, e.g. 'Snapdragon(R) X Elite - X1E78100 - Qualcomm(R) Oryon(TM) CPU'."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
        for key in ("model name", "Hardware", "Model", "cpu model"):
            match = re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE)
            if match:
                return match.group(1).strip()
    if sys.platform == "win32":
        try:
            import winreg

            with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"HARDWARE\DESCRIPTION\System\CentralProcessor\0") as key:
                return str(winreg.QueryValueEx(key, "ProcessorNameString")[0]).strip()
        except OSError:
            pass
    return platform.processor() or "unknown"


def fingerprint() -> dict[str, str]:
    """This machine's identity for baselines.

    >>> sorted(fingerprint())
    ['arch', 'cores', 'cpu', 'os']
    """
    return {
        "os": platform.system().lower() or "unknown",
        "arch": platform.machine().lower() or "unknown",
        "cpu": cpu_model(),
        "cores": str(os.cpu_count() or 0),
    }


def slug(device: dict[str, str]) -> str:
    """A folder-safe name, e.g. 'linux-x86_64-amd-epyc-2c'."""
    raw = f"{device['os']}-{device['arch']}-{device['cpu']}-{device['cores']}c"
    return re.sub(r"[^a-z0-9_.]+", "-", raw.lower()).strip("-")


def htp_simulated() -> bool:
    """On x86_64 every QNN HTP backend (the QNN EP's, Genie's) is the simulator."""
    return platform.machine().lower() in ("x86_64", "amd64")
