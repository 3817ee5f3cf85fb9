"""The ``rtenhance serve`` wire protocol over WebSocket (see README.md, "Serving many streams").

1. The client sends one text message, the hello: a JSON object
   ``{"type": "hello", "sample_rate": 16000, "format": "pcm16"}`` (``format``: ``"pcm16"``, signed 16-bit
   little-endian, or ``"float32"``, little-endian IEEE floats; ``sample_rate`` must be 16000).
2. The server answers with one text message, ``{"type": "ready", "stream": ID, "sample_rate": 16000,
   "format": ..., "hop_samples": 256, "latency_samples": 256}``.
3. The client then sends binary messages of mono audio in its format, any whole number of samples each;
   the server sends back binary messages of enhanced audio in the same format, one hop (256 samples,
   16 ms) each, in order.

A client that breaks the protocol is closed with a WebSocket close code and a reason that names the
problem (``ProtocolError``): 1002 (audio before the hello), 1003 (unsupported rate or format, text after
the hello), 1007 (a hello that is not valid, audio that is not whole samples or not finite), 1008 (no
hello in time, a reader too slow for its output), 1013 (server full), 1001 (server shutting down).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16000
FORMATS = {"pcm16": np.dtype("<i2"), "float32": np.dtype("<f4")}
HELLO_KEYS = ("type", "sample_rate", "format")
PCM16_SCALE = 32768.0  # int16 full scale

CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED = 1003
CLOSE_INVALID_PAYLOAD = 1007
CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN_LATER = 1013


class ProtocolError(Exception):
    """A client broke the protocol: close its connection with ``code`` and ``reason``.

    Attributes:
        code: the WebSocket close code.
        reason: one line naming the problem (at most 123 bytes, the limit of a close frame).
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason.encode()[:123].decode(errors="ignore")


@dataclass(frozen=True)
class Hello:
    """A client's accepted hello.

    Attributes:
        format: ``"pcm16"`` or ``"float32"``: the sample format of its audio in both directions.
    """

    format: str

    @property
    def dtype(self) -> np.dtype:
        return FORMATS[self.format]


def parse_hello(message: str | bytes) -> Hello:
    """The hello a client's first message holds.

    Raises:
        ProtocolError: binary data, not a JSON object, unknown keys, or an unsupported rate or format.
    """
    if isinstance(message, bytes):
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "send the hello text message before any audio")
    try:
        hello = json.loads(message)
    except json.JSONDecodeError as exc:
        raise ProtocolError(CLOSE_INVALID_PAYLOAD, f"hello is not JSON: {exc.msg}") from None
    if not isinstance(hello, dict):
        raise ProtocolError(CLOSE_INVALID_PAYLOAD, "hello must be a JSON object")
    unknown = sorted(set(hello) - set(HELLO_KEYS))
    if unknown:
        raise ProtocolError(CLOSE_INVALID_PAYLOAD, f"hello key {unknown[0]!r} unknown; allowed: {', '.join(HELLO_KEYS)}")
    if hello.get("type") != "hello":
        raise ProtocolError(CLOSE_INVALID_PAYLOAD, 'hello needs "type": "hello"')
    rate = hello.get("sample_rate")
    if rate != SAMPLE_RATE:
        raise ProtocolError(CLOSE_UNSUPPORTED, f"sample_rate {rate!r} is not supported; this server takes {SAMPLE_RATE}")
    fmt = hello.get("format")
    if fmt not in FORMATS:
        raise ProtocolError(CLOSE_UNSUPPORTED, f"format {fmt!r} is not supported; choose one of: {', '.join(FORMATS)}")
    return Hello(format=fmt)


def ready_message(stream_id: int, hello: Hello, hop_samples: int, latency_samples: int) -> str:
    """The server's answer to an accepted hello."""
    return json.dumps({"type": "ready", "stream": stream_id, "sample_rate": SAMPLE_RATE, "format": hello.format,
                       "hop_samples": hop_samples, "latency_samples": latency_samples})


def decode_audio(message: str | bytes, hello: Hello) -> np.ndarray:
    """A client's audio message -> (N,) float32 samples in [-1, 1] (pcm16) or as sent (float32).

    Raises:
        ProtocolError: a text message, a byte count that is not whole samples, or non-finite samples.
    """
    if isinstance(message, str):
        raise ProtocolError(CLOSE_UNSUPPORTED, "only binary audio messages are accepted after the hello")
    size = hello.dtype.itemsize
    if len(message) % size:
        raise ProtocolError(CLOSE_INVALID_PAYLOAD,
                            f"audio message of {len(message)} bytes is not whole {hello.format} samples ({size} bytes each)")
    samples = np.frombuffer(message, dtype=hello.dtype)
    if hello.format == "pcm16":
        return samples.astype(np.float32) / np.float32(PCM16_SCALE)
    if not np.isfinite(samples).all():
        raise ProtocolError(CLOSE_INVALID_PAYLOAD, "audio message holds non-finite float32 samples")
    return samples.astype(np.float32)


def encode_audio(samples: np.ndarray, hello: Hello) -> bytes:
    """(N,) float32 samples -> the bytes of one audio message in the client's format (pcm16: clipped)."""
    if hello.format == "pcm16":
        scaled = np.clip(np.rint(samples * PCM16_SCALE), -PCM16_SCALE, PCM16_SCALE - 1)
        return scaled.astype("<i2").tobytes()
    return np.asarray(samples, dtype="<f4").tobytes()
