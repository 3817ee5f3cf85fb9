import re

import pytest
import yaml

from rtenhance.config import ConfigError, ModelConfig, StftConfig, apply_overrides, from_dict, to_dict


def test_round_trip_through_yaml() -> None:
    config = ModelConfig(erb_bands=16, channels=8, gt_dilations=(1, 2))
    assert from_dict(ModelConfig, yaml.safe_load(yaml.safe_dump(to_dict(config)))) == config


def test_defaults_are_published_sizes() -> None:
    config = from_dict(ModelConfig, {})
    assert (config.n_bands, config.stft.n_bins, config.stft.hop_ms) == (129, 257, 16.0)


def test_unknown_key_names_allowed_keys() -> None:
    with pytest.raises(ConfigError, match=r"stft\.hop: unknown key; allowed keys: sample_rate, n_fft, hop_samples"):
        from_dict(ModelConfig, {"stft": {"hop": 128}})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"channels": "wide"}, r"channels: 'wide' is not allowed; expected an integer"),
        ({"channels": 6}, r"model\.channels: 6 is not allowed; expected a multiple of 4"),
        ({"gt_dilations": 3}, r"gt_dilations: 3 is not allowed; expected a list"),
        ({"stft": {"hop_samples": 100}}, r"stft\.hop_samples: 100 is not allowed"),
    ],
)
def test_bad_values_name_key_and_allowed(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_dict(ModelConfig, data)


def test_overrides() -> None:
    data = apply_overrides({"stft": {"n_fft": 512}}, ["stft.hop_samples=256", "channels=8"])
    assert from_dict(ModelConfig, data) == ModelConfig(StftConfig(hop_samples=256), channels=8)
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["channels"])


def _anchor_bomb(levels: int = 9) -> str:
    """A flow sequence of 9 strings, then ``levels - 1`` lists of 9 aliases of the previous one: a few
    hundred bytes that expand to 9**levels strings once anything walks the value."""
    names = [chr(ord("a") + i) for i in range(levels)]
    parts = [f"&{names[0]} [{', '.join(['lol'] * 9)}]"]
    parts += [f"&{name} [{', '.join([f'*{prev}'] * 9)}]" for prev, name in zip(names, names[1:])]
    return "[" + ", ".join(parts) + "]"


def test_messages_are_short_whatever_the_value() -> None:
    huge = [["x" * 1000] * 100] * 100  # a 10 MB repr
    for data in ({"channels": huge}, {"channels": "y" * 100_000}, {"z" * 100_000: 1}):
        with pytest.raises(ConfigError) as info:
            from_dict(ModelConfig, data)
        assert len(str(info.value)) < 300


def test_set_anchor_bomb_is_refused_quickly_in_bounded_memory() -> None:
    """The bomb through ``--set``: refused before expansion. Run in a subprocess with 1 GiB of address
    space and 20 s: the unbounded loader printed the expanded value (gigabytes, over a minute)."""
    import subprocess
    import sys

    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "from rtenhance.config import ConfigError, ModelConfig, apply_overrides, from_dict\n"
        "try:\n"
        "    from_dict(ModelConfig, apply_overrides({}, ['channels=' + sys.argv[1]]))\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    bomb = _anchor_bomb()
    assert len(bomb) < 400
    result = subprocess.run([sys.executable, "-c", code, bomb], capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr[-500:]
    assert "aliases" in result.stdout and len(result.stdout) < 400


def test_set_numbers_with_exponent_are_numbers() -> None:
    assert apply_overrides({}, ["a=1e9", "b=-2.5E-3", "c=7", "d=text"]) == {"a": 1e9, "b": -2.5e-3, "c": 7, "d": "text"}
    with pytest.raises(ConfigError, match=r"stft\.sample_rate: 1000000000 is not allowed"):
        from_dict(ModelConfig, apply_overrides({}, ["stft.sample_rate=1000000000"]))


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"channels": 40000}, "model.channels"),
        ({"stft": {"n_fft": 2**25, "hop_samples": 2**24}}, "stft.n_fft"),
        ({"stft": {"sample_rate": 10**9}}, "stft.sample_rate"),
        ({"dpgrnn_blocks": 1000}, "model.dpgrnn_blocks"),
        ({"gt_dilations": [1] * 100}, "model.gt_dilations"),
        ({"gt_dilations": [100000]}, "model.gt_dilations"),
    ],
)
def test_every_model_size_is_bounded(data: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(key) + ".*is not allowed"):
        from_dict(ModelConfig, data)


def test_yaml_duplicate_keys_deep_nesting_and_aliases_are_refused() -> None:
    from rtenhance.config_yaml import MAX_ALIASES, MAX_DEPTH, YamlLimitError, load_yaml

    with pytest.raises(yaml.YAMLError, match="duplicate key 'target_ms'"):
        load_yaml("latency:\n  target_ms: 60\n  target_ms: 80\n")
    with pytest.raises(YamlLimitError, match="nested deeper"):
        load_yaml("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    with pytest.raises(YamlLimitError, match="aliases"):
        load_yaml("a: &x 1\nb: [" + ", ".join(["*x"] * (MAX_ALIASES + 1)) + "]\n")
    assert load_yaml("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n") == {"base": {"x": 1}, "other": {"x": 1, "y": 2}}
