"""The run's helpers without a pytest session: Memo and attempt."""

from __future__ import annotations

import pytest

from npuperf.suite.run import Memo, attempt, fail, skip


def test_memo_makes_the_value_once() -> None:
    memo: Memo[int] = Memo()
    calls = []

    def make() -> int:
        calls.append(1)
        return 42

    assert (memo.get(make), memo.get(make), memo.value) == (42, 42, 42)
    assert len(calls) == 1


@pytest.mark.parametrize("stop", [skip, fail])
def test_memo_keeps_the_skip_or_failure_and_never_tries_again(stop) -> None:  # type: ignore[no-untyped-def]
    memo: Memo[int] = Memo()
    calls = []

    def make() -> int:
        calls.append(1)
        stop("the runtime is missing")

    for _ in range(3):
        with pytest.raises((pytest.skip.Exception, pytest.fail.Exception), match="the runtime is missing"):
            memo.get(make)
    assert len(calls) == 1
    assert memo.value is None


def test_memo_lets_other_errors_through_and_tries_again() -> None:
    """Only a decided skip or failure is kept; a bug is not turned into one."""
    memo: Memo[int] = Memo()
    with pytest.raises(ZeroDivisionError):
        memo.get(lambda: 1 // 0)
    assert memo.get(lambda: 7) == 7


def test_attempt_fails_with_the_described_error_and_no_chained_traceback() -> None:
    def boom() -> int:
        raise ValueError("bad shape")

    with pytest.raises(pytest.fail.Exception, match=r"^case t8-p8: bad shape$") as info:
        attempt(boom, (ValueError,), lambda exc: f"case t8-p8: {exc}")
    assert info.value.__context__ is None
    assert attempt(lambda: 3, (ValueError,), str) == 3
    with pytest.raises(KeyError):
        attempt(lambda: {}["x"], (ValueError,), str)
