"""The host id: the same on this machine, another on another; a hash, not a name."""

from __future__ import annotations

import re

import pytest

from npuperf.machine import host


def test_the_host_id_is_12_hex_digits_and_stable() -> None:
    first = host.host_id()
    assert re.fullmatch(r"[0-9a-f]{12}", first)
    host.host_id.cache_clear()
    assert host.host_id() == first


@pytest.mark.parametrize("part", ["machine_id", "cpu_signature"])
def test_another_machine_id_or_cpu_is_another_host(monkeypatch: pytest.MonkeyPatch, part: str) -> None:
    host.host_id.cache_clear()
    here = host.host_id()
    monkeypatch.setattr(host, part, lambda: "something else")
    host.host_id.cache_clear()
    try:
        assert host.host_id() != here
    finally:
        monkeypatch.undo()
        host.host_id.cache_clear()


def test_no_name_leaves_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "machine_id", lambda: "laptop-of-wang")
    host.host_id.cache_clear()
    try:
        assert "wang" not in host.host_id()
    finally:
        monkeypatch.undo()
        host.host_id.cache_clear()


def test_the_cpu_signature_reads_the_first_processor_only(monkeypatch: pytest.MonkeyPatch) -> None:
    cpuinfo = "processor\t: 0\ncpu family\t: 25\nmodel\t: 17\nflags\t: b a\n\nprocessor\t: 1\nmodel\t: 99\n"
    monkeypatch.setattr(host, "_read", lambda path: cpuinfo)
    assert host.cpu_signature() == "cpu family=25; flags=a b; model=17"
