"""One client of ``rtenhance serve``: its input waiting to be stepped, its output waiting to be sent, and
its counters. Touched only from the server's event loop."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from rtenhance.serve.protocol import Hello


@dataclass
class SessionCounts:
    """What happened to one stream's hops.

    Attributes:
        enhanced: hops stepped by the model.
        skipped: ticks at which the stream had started but had no whole hop waiting (its audio was late).
        passthrough: hops sent back unprocessed because more than the allowed backlog was waiting.
    """

    enhanced: int = 0
    skipped: int = 0
    passthrough: int = 0


@dataclass
class Session:
    """One connected, accepted client.

    Attributes:
        session_id: the id sent to the client in the ready message.
        hello: its accepted hello (format).
        hop_samples: samples per hop.
        stream_id: its stream in the ``MultiStreamEnhancer`` once the worker has added it, else None.
        counts: its hop counters.
        outbox: encoded audio messages waiting to be sent, oldest first.
        wake: set when ``outbox`` gains messages.
        started_at: monotonic time of its hello.
        closing: the server has begun closing it.
    """

    session_id: int
    hello: Hello
    hop_samples: int
    started_at: float
    stream_id: int | None = None
    closing: bool = False
    counts: SessionCounts = field(default_factory=SessionCounts)
    outbox: deque[bytes] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    _chunks: deque[np.ndarray] = field(default_factory=deque)
    _buffered: int = 0

    @property
    def started(self) -> bool:
        """Whether any audio has arrived or been stepped yet."""
        return self._buffered > 0 or self.counts.enhanced > 0 or self.counts.passthrough > 0

    @property
    def waiting_hops(self) -> int:
        """Whole hops of input waiting."""
        return self._buffered // self.hop_samples

    def push(self, samples: np.ndarray) -> None:
        """Queue input samples (N,) float32."""
        if samples.shape[0]:
            self._chunks.append(samples)
            self._buffered += samples.shape[0]

    def take_hop(self) -> np.ndarray:
        """The oldest whole hop of input, (hop_samples,) float32 (a new array); needs ``waiting_hops >= 1``."""
        h = self.hop_samples
        parts, need = [], h
        while need:
            chunk = self._chunks[0]
            if chunk.shape[0] <= need:
                parts.append(self._chunks.popleft())
                need -= chunk.shape[0]
            else:
                parts.append(chunk[:need])
                self._chunks[0] = chunk[need:]
                need = 0
        self._buffered -= h
        return np.concatenate(parts) if len(parts) > 1 else parts[0].copy()

    def send(self, message: bytes) -> None:
        """Queue one encoded audio message for the sender."""
        self.outbox.append(message)
        self.wake.set()
