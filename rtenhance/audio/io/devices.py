"""Audio endpoints: listing devices, turning ``--input``/``--output`` specs into endpoints.

Specs: ``mic`` / ``speakers`` (the system defaults: the sound server's default source and sink through
libpulse-simple when a PulseAudio/PipeWire server answers, else PortAudio's defaults), a PortAudio device
index, a device-name substring,
``pulse:NAME`` (a PulseAudio/PipeWire source or sink, streamed with libpulse-simple, not PortAudio),
``file:PATH``, and for output ``virtual-mic`` (see ``virtual_mic``). sounddevice is imported inside
functions: importing it initialises PortAudio.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from rtenhance.audio.io import pulse

PULSE_PREFIX = "pulse:"
FILE_PREFIX = "file:"
VIRTUAL_MIC = "virtual-mic"
MAX_CHANNELS = 2  # stereo devices are downmixed on input and fed the same signal on every output channel
PULSE_STREAM_RATE = 16000  # pulse streams run at the model's rate: the sound server converts, in optimised C

Direction = Literal["input", "output"]


class DeviceError(ValueError):
    """A device spec names nothing usable; the message says what exists."""


@dataclass(frozen=True)
class Endpoint:
    """Where audio comes from or goes to.

    Attributes:
        kind: "device" (a PortAudio stream), "pulse" (a PulseAudio stream) or "file".
        direction: "input" or "output".
        spec: the user's text, for messages.
        device: PortAudio device index (kind "device").
        device_name: PortAudio device name, used to find the device again after it comes back.
        pulse_name: the PulseAudio source or sink (kind "pulse"); None follows the server's default.
        path: the file (kind "file").
        sample_rate: the rate to open the stream at, in Hz.
        channels: channels to open (1 or 2).
    """

    kind: Literal["device", "pulse", "file"]
    direction: Direction
    spec: str
    device: int | None = None
    device_name: str = ""
    pulse_name: str | None = None
    path: Path | None = None
    sample_rate: int = 0
    channels: int = 1


def _sd() -> Any:
    import sounddevice

    return sounddevice


def list_devices() -> list[dict[str, Any]]:
    """PortAudio devices: index, name, host API, input/output channels, default rate, default flags."""
    sd = _sd()
    default_in, default_out = sd.default.device
    hostapis = sd.query_hostapis()
    return [
        {
            "index": i,
            "name": d["name"],
            "hostapi": hostapis[d["hostapi"]]["name"],
            "inputs": d["max_input_channels"],
            "outputs": d["max_output_channels"],
            "rate": int(d["default_samplerate"]),
            "default_input": i == default_in,
            "default_output": i == default_out,
        }
        for i, d in enumerate(sd.query_devices())
    ]


def _channels_key(direction: Direction) -> str:
    return "inputs" if direction == "input" else "outputs"


def _by_index(devices: list[dict[str, Any]], index: int, direction: Direction, spec: str) -> dict[str, Any]:
    if not 0 <= index < len(devices) or devices[index][_channels_key(direction)] == 0:
        usable = ", ".join(f"{d['index']} ({d['name']})" for d in devices if d[_channels_key(direction)] > 0)
        raise DeviceError(f"{direction} {spec!r}: no such {direction} device; {direction} devices: {usable or 'none'}")
    return devices[index]


def _by_name(devices: list[dict[str, Any]], text: str, direction: Direction) -> dict[str, Any]:
    usable = [d for d in devices if d[_channels_key(direction)] > 0]
    exact = [d for d in usable if d["name"].lower() == text.lower()]
    matches = exact or [d for d in usable if text.lower() in d["name"].lower()]
    names = ", ".join(f"{d['index']} ({d['name']})" for d in usable) or "none"
    if not matches:
        raise DeviceError(f"{direction} {text!r}: no {direction} device matches; {direction} devices: {names}")
    if len(matches) > 1:
        which = ", ".join(f"{d['index']} ({d['name']})" for d in matches)
        raise DeviceError(f"{direction} {text!r} is ambiguous: it matches {which}; give an index or a longer name")
    return matches[0]


def _device_endpoint(dev: dict[str, Any], spec: str, direction: Direction, rate: int) -> Endpoint:
    channels = min(MAX_CHANNELS, dev[_channels_key(direction)])
    return Endpoint("device", direction, spec, dev["index"], dev["name"], None, None, rate or dev["rate"], channels)


def _pulse_endpoint(name: str, spec: str, direction: Direction, rate: int) -> Endpoint:
    kind = "sources" if direction == "input" else "sinks"
    try:
        known = pulse.list_devices(kind)
    except pulse.PulseError as exc:
        raise DeviceError(f"{direction} {spec!r}: {exc}") from None
    if name not in known:
        raise DeviceError(f"{direction} {spec!r}: no pulse {kind[:-1]} named {name!r}; {kind}: {', '.join(known) or 'none'}")
    # mono both ways: the server mixes the device's channels down (capture) and up (playback)
    return Endpoint("pulse", direction, spec, pulse_name=name, sample_rate=rate or PULSE_STREAM_RATE, channels=1)


def _file_endpoint(path_text: str, spec: str, direction: Direction) -> Endpoint:
    path = Path(path_text).expanduser()
    if direction == "input":
        import soundfile

        try:
            info = soundfile.info(str(path))
        except (RuntimeError, OSError) as exc:
            raise DeviceError(f"input {spec!r}: cannot read audio file ({str(exc).splitlines()[0]})") from None
        return Endpoint("file", direction, spec, path=path, sample_rate=info.samplerate, channels=info.channels)
    if not path.parent.is_dir():
        raise DeviceError(f"output {spec!r}: directory {path.parent} does not exist")
    return Endpoint("file", direction, spec, path=path)


def resolve(spec: str, direction: Direction, sample_rate: int = 0) -> Endpoint:
    """Turn an ``--input``/``--output`` spec into an endpoint (``virtual-mic`` is ``virtual_mic.VirtualMic``).

    Args:
        spec: mic, speakers, an index, a name substring, pulse:NAME or file:PATH.
        direction: "input" or "output".
        sample_rate: rate to open at in Hz; 0 for the device's native rate (PortAudio) or
            ``PULSE_STREAM_RATE`` (PulseAudio streams, which the server converts to the device's rate).

    Raises:
        DeviceError: nothing matches, or the match cannot do the direction asked (the message lists what exists).
    """
    if spec.startswith(FILE_PREFIX):
        return _file_endpoint(spec[len(FILE_PREFIX) :], spec, direction)
    if spec.startswith(PULSE_PREFIX):
        return _pulse_endpoint(spec[len(PULSE_PREFIX) :], spec, direction, sample_rate)
    devices = list_devices()
    if spec in ("mic", "speakers"):
        wanted = "input" if spec == "mic" else "output"
        if wanted != direction:
            raise DeviceError(f"{direction} {spec!r}: {spec} is an {wanted} device")
        server_default = pulse.default_device("sources" if direction == "input" else "sinks")
        if server_default is not None:
            return Endpoint("pulse", direction, spec, sample_rate=sample_rate or PULSE_STREAM_RATE, channels=1)
        default = next((d for d in devices if d[f"default_{direction}"]), None)
        if default is None:
            raise DeviceError(f"{direction} {spec!r}: the system has no default {direction} device")
        return _device_endpoint(default, spec, direction, sample_rate)
    if spec.isdigit():
        return _device_endpoint(_by_index(devices, int(spec), direction, spec), spec, direction, sample_rate)
    return _device_endpoint(_by_name(devices, spec, direction), spec, direction, sample_rate)


def refind(endpoint: Endpoint) -> Endpoint:
    """The endpoint's device after PortAudio re-enumerated devices (its index may have changed).

    Raises:
        DeviceError: the device is not there (yet).
    """
    if endpoint.kind != "device":
        return endpoint
    key = _channels_key(endpoint.direction)
    dev = next((d for d in list_devices() if d["name"] == endpoint.device_name and d[key] > 0), None)
    if dev is None:
        raise DeviceError(f"{endpoint.direction} {endpoint.spec!r}: device {endpoint.device_name!r} is not present")
    return replace(endpoint, device=dev["index"])
