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
