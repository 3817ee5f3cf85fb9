"""ServeConfig: a bad setting is refused with the key and the allowed values named (the config loader's rule)."""

from __future__ import annotations

import pytest

from rtenhance.config import ConfigError
from rtenhance.serve.config import ServeConfig


@pytest.mark.parametrize(("setting", "key"), [({"port": 70000}, "serve.port"), ({"max_streams": 0}, "serve.max_streams"),
                                              ({"max_unsent_s": 0.0}, "serve.max_unsent_s")])
def test_bad_settings_name_the_key_and_what_is_allowed(setting, key):
    with pytest.raises(ConfigError, match=rf"^{key}: .* is not allowed; expected "):
        ServeConfig(**setting)


def test_defaults_are_valid():
    assert ServeConfig().max_streams >= 1
