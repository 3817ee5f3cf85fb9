"""Many independent streams enhanced together: one batched native step per hop for all of them.

``MultiStreamEnhancer`` is the multi-stream form of ``Enhancer``: streams join (``add_stream``) and leave
(``remove_stream``) at any hop, and each call advances only the streams it is given, so a stream that
misses a hop does not hold up the others (it simply continues later). Each stream's output equals what
its own ``Enhancer`` on the native backend would give (up to float rounding: the batched step sums in
another order).

Two entry points: ``process({id: samples})`` takes any number of samples per stream, like
``Enhancer.feed``; ``process_hops(ids, hops)`` takes exactly one hop per stream as one (n, hop) array and
is what real-time callers (``rtenhance serve``, ``bench/streams.py``) use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rtenhance.backends.native.batch import BatchStepper
from rtenhance.dsp.batch_stft import BatchStft
from rtenhance.model.gtcrn import GTCRN


@dataclass
class _Stream:
    """One stream's slot and its input that does not yet fill a hop.

    Attributes:
        slot: its row in the STFT histories and the batched step's state.
        pending: (hop_samples,) float32 buffer; the first ``count`` samples are waiting.
        count: samples waiting in ``pending``.
    """

    slot: int
    pending: np.ndarray
    count: int = 0


class MultiStreamEnhancer:
    """Streaming enhancement of any number of mono streams at the model rate (see the module docstring).

    Args:
        model: the network; its weights are copied.
        capacity: streams to allocate room for up front (grows as needed).

    Raises:
        NativeUnavailable: the batched native library cannot be built or loaded.
    """

    def __init__(self, model: GTCRN, capacity: int = 0) -> None:
        self.cfg = model.config.stft
        self.hop_samples = self.cfg.hop_samples
        self._stepper = BatchStepper(model, capacity)
        self._stft = BatchStft(self.cfg, self._stepper.capacity)
        self._streams: dict[int, _Stream] = {}
        self._next_id = 0

    @property
    def latency_samples(self) -> int:
        """Delay of each output stream relative to its input stream, in samples (as ``Enhancer``)."""
        return self.cfg.n_fft - self.cfg.hop_samples

    @property
    def stream_ids(self) -> list[int]:
        """Ids of the current streams, in the order they joined."""
        return list(self._streams)

    def add_stream(self) -> int:
        """A new stream in the zero state; returns its id (never reused)."""
        slot = self._stepper.open_slot()
        self._stft.reserve(self._stepper.capacity)
        self._stft.reset(slot)
        stream_id = self._next_id
        self._next_id += 1
        self._streams[stream_id] = _Stream(slot, np.zeros(self.hop_samples, dtype=np.float32))
        return stream_id

    def remove_stream(self, stream_id: int) -> None:
        """Forget a stream (its pending samples are dropped).

        Raises:
            KeyError: no stream has this id.
        """
        stream = self._stream(stream_id)
        del self._streams[stream_id]
        self._stepper.close_slot(stream.slot)

    def _stream(self, stream_id: int) -> _Stream:
        try:
            return self._streams[stream_id]
        except KeyError:
            raise KeyError(f"no stream with id {stream_id}") from None

    def process_hops(self, stream_ids: Sequence[int], hops: np.ndarray) -> np.ndarray:
        """Enhance exactly one hop of each named stream in one batched step; the others keep their state.

        Hops go straight through: samples a stream has pending from ``process`` are not involved.

        Args:
            stream_ids: n distinct stream ids.
            hops: (n, hop_samples) float32 samples, row i for stream_ids[i].

        Returns:
            (n, hop_samples) float32 enhanced samples, ``latency_samples`` behind the input (a new array).

        Raises:
            KeyError: an unknown id.
        """
        slots = np.fromiter((self._stream(i).slot for i in stream_ids), dtype=np.int64, count=len(stream_ids))
        hops = np.asarray(hops, dtype=np.float32).reshape(len(stream_ids), self.hop_samples)
        frames = self._stft.analyze(slots, hops)
        return self._stft.synthesize(slots, self._stepper.step(slots, frames))

    def process(self, chunks: Mapping[int, np.ndarray]) -> dict[int, np.ndarray]:
        """Enhance any number of samples of each named stream; streams not named are not advanced.

        Args:
            chunks: stream id -> (N,) samples, any N >= 0 (float32 or convertible).

        Returns:
            stream id -> (M,) float32 enhanced samples that are ready, M a multiple of hop_samples (as
            ``Enhancer.feed``).

        Raises:
            KeyError: an unknown id.
        """
        h = self.hop_samples
        streams = {stream_id: self._stream(stream_id) for stream_id in chunks}  # every id checked first
        hops: dict[int, np.ndarray] = {}
        for stream_id, samples in chunks.items():
            stream = streams[stream_id]
            x = np.concatenate([stream.pending[: stream.count], np.asarray(samples, dtype=np.float32).reshape(-1)])
            ready = x.shape[0] // h
            stream.count = x.shape[0] - ready * h
            stream.pending[: stream.count] = x[ready * h :]
            hops[stream_id] = x[: ready * h].reshape(ready, h)
        out = {stream_id: np.empty(rows.size, dtype=np.float32) for stream_id, rows in hops.items()}
        for k in range(max((rows.shape[0] for rows in hops.values()), default=0)):
            ids = [stream_id for stream_id, rows in hops.items() if rows.shape[0] > k]
            enhanced = self.process_hops(ids, np.stack([hops[stream_id][k] for stream_id in ids]))
            for stream_id, row in zip(ids, enhanced):
                out[stream_id][k * h : (k + 1) * h] = row
        return out
