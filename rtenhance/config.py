"""Configuration: frozen dataclasses split by lifetime, and a validating loader.

What a checkpoint fixes (``StftConfig``, ``ModelConfig``) is kept apart from what a user tunes at run
time (the daemon's sections, added by the runtime). Every section is a frozen dataclass; ``from_dict``
builds one from plain data (YAML, JSON, a checkpoint) and rejects unknown keys and bad values with a
message that names the key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import reprlib
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

MAX_MESSAGE_CHARS = 400  # a message longer than this is cut: values come from untrusted files
MAX_SAMPLE_RATE = 192000  # Hz
MAX_N_FFT = 4096  # samples: 256 ms at 16 kHz
MAX_CHANNELS = 256  # model width; the published model has 16
MAX_DPGRNN_BLOCKS = 8
MAX_GT_BLOCKS = 8  # GTConv blocks per encoder (and decoder)
MAX_DILATION = 64  # frames

MAX_VALUE_CHARS = 80  # a value shown in a message is cut to this length

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 40
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 4
_REPR.maxlevel = 2


def short_repr(value: Any) -> str:
    """``repr(value)`` cut to ``MAX_VALUE_CHARS``, however large or deeply nested the value is."""
    return _cut(_REPR.repr(value))


def _cut(text: str, chars: int = MAX_VALUE_CHARS) -> str:
    return text if len(text) <= chars else text[: chars - 3] + "..."


class ConfigError(ValueError):
    """A configuration key or value is not allowed; the message names the key and the allowed values.

    Messages longer than ``MAX_MESSAGE_CHARS`` are cut, whatever built them.
    """

    def __init__(self, message: str) -> None:
        super().__init__(_cut(message, MAX_MESSAGE_CHARS))


@dataclass(frozen=True)
class StftConfig:
    """Short-time Fourier transform shared by the model, the enhancer and training.

    Attributes:
        sample_rate: model sample rate in Hz.
        n_fft: FFT size and window length in samples (512 = 32 ms at 16 kHz).
        hop_samples: hop between frames in samples (256 = 16 ms at 16 kHz).
    """

    sample_rate: int = 16000
    n_fft: int = 512
    hop_samples: int = 256

    def __post_init__(self) -> None:
        require(0 < self.sample_rate <= MAX_SAMPLE_RATE, "stft.sample_rate", self.sample_rate,
                 f"1..{MAX_SAMPLE_RATE} Hz")
        require(4 <= self.n_fft <= MAX_N_FFT and self.n_fft % 2 == 0, "stft.n_fft", self.n_fft,
                 f"an even integer 4..{MAX_N_FFT}")
        require(
            self.n_fft == 2 * self.hop_samples,
            "stft.hop_samples",
            self.hop_samples,
            f"n_fft / 2 = {self.n_fft // 2} (sqrt-Hann analysis/synthesis needs 50 % overlap)",
        )

    @property
    def n_bins(self) -> int:
        """Number of one-sided frequency bins: n_fft // 2 + 1 (257)."""
        return self.n_fft // 2 + 1

    @property
    def hop_ms(self) -> float:
        """Hop duration in milliseconds (16 ms)."""
        return 1000.0 * self.hop_samples / self.sample_rate


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a GTCRN network: fixed by a checkpoint, never changed at run time.

    Attributes:
        stft: the STFT the model was trained with.
        erb_low_bins: lowest STFT bins passed through unmerged (65).
        erb_bands: ERB bands the remaining bins are merged into (64).
        channels: channel width of the encoder, the DPGRNNs and the decoder (16).
        dpgrnn_blocks: number of grouped dual-path RNN blocks (2).
        gt_dilations: temporal dilations of the encoder's GTConv blocks; the decoder mirrors them.
    """

    stft: StftConfig = field(default_factory=StftConfig)
    erb_low_bins: int = 65
    erb_bands: int = 64
    channels: int = 16
    dpgrnn_blocks: int = 2
    gt_dilations: tuple[int, ...] = (1, 2, 5)

    def __post_init__(self) -> None:
        n_bins = self.stft.n_bins
        require(0 < self.erb_low_bins < n_bins, "model.erb_low_bins", self.erb_low_bins, f"1..{n_bins - 1}")
        require(
            2 <= self.erb_bands <= n_bins - self.erb_low_bins,
            "model.erb_bands",
            self.erb_bands,
            f"2..{n_bins - self.erb_low_bins} (bins above erb_low_bins)",
        )
        require(4 <= self.channels <= MAX_CHANNELS and self.channels % 4 == 0, "model.channels", self.channels,
                 f"a multiple of 4 in 4..{MAX_CHANNELS}")
        require(0 <= self.dpgrnn_blocks <= MAX_DPGRNN_BLOCKS, "model.dpgrnn_blocks", self.dpgrnn_blocks,
                 f"0..{MAX_DPGRNN_BLOCKS}")
        require(
            0 < len(self.gt_dilations) <= MAX_GT_BLOCKS and all(1 <= d <= MAX_DILATION for d in self.gt_dilations),
            "model.gt_dilations",
            self.gt_dilations,
            f"a list of 1..{MAX_GT_BLOCKS} integers in 1..{MAX_DILATION}",
        )

    @property
    def n_bands(self) -> int:
        """Bands after ERB merging: erb_low_bins + erb_bands (129)."""
        return self.erb_low_bins + self.erb_bands


def require(ok: bool, key: str, value: Any, allowed: str) -> None:
    """Raise ``ConfigError`` naming ``key``, its (shortened) ``value`` and the ``allowed`` values unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key}: {short_repr(value)} is not allowed; expected {allowed}")


def from_dict(cls: type[T], data: Any, prefix: str = "") -> T:
    """Build the frozen dataclass ``cls`` from nested plain data, validating every key and type.

    Args:
        cls: a dataclass type whose fields are ints, floats, bools, strings, tuples, optionals or dataclasses.
        data: a mapping (or None for all defaults).
        prefix: dotted path of ``data`` inside the whole configuration, used in error messages.

    Raises:
        ConfigError: an unknown key, or a value of the wrong type or range.
    """
    if data is None:
        data = {}
    where = prefix.rstrip(".") or "config"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted((k for k in data if k not in names), key=str)
    if unknown:
        name = unknown[0] if isinstance(unknown[0], str) else short_repr(unknown[0])
        raise ConfigError(f"{prefix}{_cut(name)}: unknown key; allowed keys: {', '.join(names)}")
    kwargs = {name: _coerce(hints[name], data[name], f"{prefix}{name}") for name in names if name in data}
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, key + ".")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, key)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key}: {short_repr(value)} is not allowed; allowed values: {', '.join(map(repr, args))}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: {short_repr(value)} is not allowed; expected a list")
        item = args[0] if args else Any
        return tuple(_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: {short_repr(value)} is not allowed; expected true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: {short_repr(value)} is not allowed; expected an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: {short_repr(value)} is not allowed; expected a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: {short_repr(value)} is not allowed; expected a string")
        return value
    return value


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain nested data (lists instead of tuples) for YAML, JSON and checkpoints; inverse of ``from_dict``."""

    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(obj))


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as bounded YAML, see ``config_yaml``) to nested data.

    Raises:
        ConfigError: an override that is not of the form ``key=value``, or a value that is not valid YAML.
    """
    import yaml

    from rtenhance.config_yaml import load_yaml

    out = _deep_copy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value, for example stats.interval_s=1")
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{key}: {part!r} is a value, not a section")
            node = child
        try:
            node[parts[-1]] = load_yaml(raw) if raw else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {key}: invalid value ({getattr(exc, 'problem', None) or exc})") from None
    return out


def _deep_copy(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in data.items()}
