"""The registry of reward methods: the built-in ones, what each offers, and refusals."""

import pytest

from robofeedback import registry
from robofeedback.registry import Method


def test_the_built_in_methods_and_where_they_are_usable():
    assert set(registry.names()) >= {"preference", "clip", "varp", "icpl", "bilevel", "heron", "safe_mpc"}
    assert {"preference", "varp", "heron", "clip"} <= set(registry.names("train"))
    assert not {"icpl", "bilevel", "safe_mpc"} & set(registry.names("train"))
    assert set(registry.names("bench")) >= {"preference", "clip", "varp", "icpl", "bilevel", "heron", "safe_mpc"}
    assert all(registry.get(name).add_commands is not None for name in ("icpl", "bilevel", "safe_mpc"))
    assert registry.get("heron").model.__name__ == "PreferenceReward"


def test_refusals():
    with pytest.raises(ValueError, match="unknown reward method 'pebble': the registered ones are"):
        registry.get("pebble")
    with pytest.raises(ValueError, match="a Python identifier"):
        Method(name="my-method", label="x", summary="x")
    with pytest.raises(ValueError, match="two methods are named 'preference'"):
        registry.register(Method(name="preference", label="x", summary="another"))
    with pytest.raises(TypeError, match="register takes a robofeedback.registry.Method"):
        registry.register("preference")
    same = registry.get("preference")
    assert registry.register(same) is same
