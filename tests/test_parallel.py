"""Executors: every result returned in order, bad settings refused."""

import pytest

from robofeedback.parallel import LocalExecutor, make_executor


def _square(x):
    return x * x


def test_executors_return_every_result_in_order():
    assert LocalExecutor(1).map(_square, range(5)) == [0, 1, 4, 9, 16]
    with LocalExecutor(2) as executor:
        assert executor.map(_square, range(5)) == [0, 1, 4, 9, 16]
    with pytest.raises(ValueError, match="jobs"):
        LocalExecutor(0)
    with pytest.raises(ValueError, match="executor must be one of"):
        make_executor("slurm")
    with pytest.raises(ValueError, match="address"):
        make_executor("local", address="auto")
