"""Which machine this is, as a hash: baselines say which host recorded them.

The device fingerprint (device.py: OS, architecture, CPU name, cores) cannot tell two hosts
of one class apart: two laptops of the same model, or two cloud VMs that both say
"AMD EPYC" with 2 cores. Measured: one such VM ran the whole grid +78.7% against a baseline
another recorded. So a baseline also keeps a host id, and a comparison with another host's
baseline says so first (it compares machines, not changes).

The id hashes what stays put on one machine and differs between machines: the OS's machine
id (/etc/machine-id, Windows' MachineGuid, macOS's IOPlatformUUID), the CPU's family, model,
stepping, cache and feature flags (a host with AVX-512 and one without run different kernels;
VMs made from one image can share a machine id), and the memory size. No name leaves the
machine: only the first 12 hex digits of a salted SHA-256.

>>> len(host_id())
12
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
import sys
from pathlib import Path

import psutil

SALT = b"npuperf-host\0"
# Readings no larger than this are read whole; machine ids are 33 bytes, /proc/cpuinfo a few kB per core.
_MAX_READ = 1 << 20


def _read(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read(_MAX_READ).decode("utf-8", "replace")
    except OSError:
        return ""


def machine_id() -> str:
    """The OS's own id of this installation, or '' where it has none we can read."""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        found = _read(path).strip()
        if found:
            return found
    if sys.platform == "win32":
        try:
            import winreg

            with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"SOFTWARE\Microsoft\Cryptography") as key:
                return str(winreg.QueryValueEx(key, "MachineGuid")[0])
        except OSError:
            return ""
    if sys.platform == "darwin":
        try:
            out = subprocess.run(
                ["ioreg", "-rd1", "-c", "IOPlatformExpertDevice"], capture_output=True, text=True, timeout=5
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return ""
        for line in out.splitlines():
            if "IOPlatformUUID" in line:
                return line.split("=")[-1].strip().strip('"')
    return ""


# /proc/cpuinfo fields that say which CPU this is, beyond its (often masked) name: a cloud VM
# names "AMD EPYC" whether it runs on a Zen 2 or a Zen 4 host, and those differ by +78% here
CPU_SIGNATURE = ("cpu family", "model", "stepping", "cache size", "CPU implementer", "CPU part", "CPU variant")


def cpu_signature() -> str:
    """The first CPU's family, model, stepping, cache and feature flags (Linux /proc/cpuinfo);
    '' elsewhere (the CPU name keys the device)."""
    text = _read("/proc/cpuinfo") if Path("/proc/cpuinfo").is_file() else ""
    found: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("flags", "Features"):
            found.setdefault("flags", " ".join(sorted(value.split())))
        elif key in CPU_SIGNATURE:
            found.setdefault(key, value.strip())
        elif not line.strip() and found:
            break  # the first processor's block is enough
    return "; ".join(f"{k}={v}" for k, v in sorted(found.items()))


@functools.cache
def host_id() -> str:
    """12 hex digits that stay the same on this machine and differ on another."""
    memory_gib = round(psutil.virtual_memory().total / 2**30)
    parts = (machine_id(), cpu_signature(), str(memory_gib))
    return hashlib.sha256(SALT + "\0".join(parts).encode()).hexdigest()[:12]
