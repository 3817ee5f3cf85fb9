"""Where samples enter and leave the engine: PortAudio streams and files, each behind a ring buffer.

PortAudio callbacks only copy between the device buffer and a preallocated ring, bump counters and
record the device latency PortAudio reports for the block (ADC/DAC timestamps); they never allocate
sample buffers, lock, log or raise. Files stand in for devices: ``FileSource`` feeds its ring at
real-time pace (a thread) or as fast as the worker drains it; ``FileSink`` writes what the worker gives it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from rtenhance.audio.io.devices import DeviceError, Endpoint
from rtenhance.audio.io.ring import SpscRing
from rtenhance.audio.realtime.thread_priority import promote_when_running

RING_SECONDS = 2.0  # capacity of each device ring
TIMING_SLOTS = 512  # latest per-callback latency readings kept (a few seconds of callbacks)
FILE_BLOCK_S = 0.01  # file source block: 10 ms
MAX_CALLBACK_FRAMES = 16384  # largest output block the playback scratch buffer holds at once
FIRST_CALLBACK_GRACE_S = 3.0  # an idle PulseAudio null sink renders in 2 s blocks: its monitor may start late


class CallbackLatency:
    """Latest device latencies reported per callback, in seconds; ``add`` never allocates."""

    def __init__(self) -> None:
        self._values = np.zeros(TIMING_SLOTS, dtype=np.float64)
        self._count = 0
        self.last_callback = time.monotonic()

    def add(self, seconds: float) -> None:
        self._values[self._count % TIMING_SLOTS] = seconds
        self._count += 1

    def median(self) -> float | None:
        """Median of the latest readings, or None before any callback reported one."""
        n = min(self._count, TIMING_SLOTS)
        return float(np.median(self._values[:n])) if n else None


def prime(ring: SpscRing, prefill: int) -> None:
    """Empty ``ring`` and put ``prefill`` samples of silence in it (before a stream starts)."""
    ring.reset()
    if prefill > 0:
        ring.write(np.zeros(prefill, dtype=np.float32))


def _sd() -> Any:
    import sounddevice

    return sounddevice


def reinitialize_portaudio() -> None:
    """Make PortAudio enumerate devices again (after a device came back); no stream may be open."""
    sd = _sd()
    sd._terminate()
    sd._initialize()


def _open_stream(factory: Any, endpoint: Endpoint, **kwargs: Any) -> Any:
    """Open a PortAudio stream on the endpoint's device."""
    try:
        return factory(device=endpoint.device, samplerate=endpoint.sample_rate, channels=endpoint.channels,
                       dtype="float32", **kwargs)
    except Exception as exc:  # sounddevice raises PortAudioError or ValueError for a missing/busy device
        raise DeviceError(f"{endpoint.direction} {endpoint.spec!r}: cannot open ({exc})") from None


class RingPlayback:
    """What a real-time playback end shows the engine: the worker writes into ``ring``, the device drains it."""

    ring: SpscRing
    cushion_s = 0.0  # the device plays silence for what the ring lacks when it asks

    @property
    def realtime(self) -> bool:
        """Plays on a device clock (file sinks do not)."""
        return True

    def write(self, samples: np.ndarray) -> None:
        """Queue mono samples for playback."""
        self.ring.write(samples)

    def depth_samples(self) -> int:
        """Samples queued and not yet taken by the device."""
        return self.ring.available

    def underflows(self) -> int:
        """Times playback found the ring short (it played silence instead), plus the device's own xruns."""
        return self.ring.underflows + self.status_flags

    def ring_underflows(self) -> int:
        """Times playback found the ring short (it played silence instead)."""
        return self.ring.underflows


class _DeviceStream:
    """What capture and playback share: open/close and fault detection.

    Subclasses name their sounddevice stream class and define ``_callback``.
    """

    stream_class: str
    device = True

    def __init__(self, endpoint: Endpoint, block_frames: int, latency_s: float | None) -> None:
        self.endpoint = endpoint
        self.rate = endpoint.sample_rate
        self.channels = endpoint.channels
        self.ring = SpscRing(int(RING_SECONDS * self.rate) * self.channels)
        self.latency = CallbackLatency()
        self.status_flags = 0  # callbacks that reported an over/underflow from PortAudio itself
        self.gap_samples = 0  # PortAudio runs no cycle without its callback
        self.callbacks = 0  # callbacks since the stream started
        self._callback_thread = 0  # PortAudio's callback thread's kernel id, recorded by its first callback
        self._block_frames = block_frames
        self._latency_arg: float | str = "low" if latency_s is None else latency_s
        self._stream: Any = None

    def open(self) -> None:
        """Open the stream (started by ``start``).

        Raises:
            DeviceError: the device cannot be opened.
        """
        self._stream = _open_stream(getattr(_sd(), self.stream_class), self.endpoint, blocksize=self._block_frames,
                                    latency=self._latency_arg, callback=self._callback)

    def start(self, prefill: int = 0) -> None:
        """Empty the ring, put ``prefill`` samples of silence in it, and start the callbacks; once the first
        callback has told its thread, that thread gets real-time scheduling when allowed (PortAudio's ALSA
        host leaves it at normal priority, and a late callback is an underrun however full the ring is)."""
        prime(self.ring, prefill)
        self.latency = CallbackLatency()
        self.callbacks = 0
        self._callback_thread = 0
        self._stream.start()
        promote_when_running(lambda: self._callback_thread, f"PortAudio {self.endpoint.direction}")

    def device_latency_s(self) -> float:
        """Device-side latency: the median PortAudio reports, else what the stream was opened with."""
        measured = self.latency.median()
        if measured is not None:
            return measured
        return float(self._stream.latency) if self._stream is not None else 0.0

    def fault(self, stall_s: float) -> str | None:
        """Why the stream is no longer usable, or None."""
        if self._stream is None:
            return "not open"
        if not self._stream.active:
            return f"{self.endpoint.direction} stream stopped"
        silent = time.monotonic() - self.latency.last_callback
        if silent > (stall_s if self.callbacks else max(stall_s, FIRST_CALLBACK_GRACE_S)):
            return f"{self.endpoint.direction} device delivered no callback for {silent:.1f} s"
        return None

    def close(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            try:
                stream.abort()
                stream.close()
            except Exception:  # a stream whose device vanished may fail to close; it is gone either way
                pass


class Capture(_DeviceStream):
    """A PortAudio input stream filling ``ring`` with interleaved float32 frames."""

    stream_class = "InputStream"

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if not self._callback_thread:
            self._callback_thread = threading.get_native_id()
        self.ring.write(indata.reshape(-1))
        if status.input_overflow:
            self.status_flags += 1
        if time_info.inputBufferAdcTime > 0:
            # age of the block's middle sample when it enters the ring
            self.latency.add(time_info.currentTime - time_info.inputBufferAdcTime - 0.5 * frames / self.rate)
        self.latency.last_callback = time.monotonic()
        self.callbacks += 1

    def pump(self) -> None:
        """Devices fill the ring from their callback: nothing to do."""

    def wait_input(self, samples: int, expected_s: float) -> None:
        """Sleep ``expected_s``, when the ring should hold ``samples`` samples (callbacks do not signal)."""
        time.sleep(expected_s)

    @property
    def exhausted(self) -> bool:
        """A device never runs out of input."""
        return False


class Playback(_DeviceStream, RingPlayback):
    """A PortAudio output stream playing ``ring`` (mono) on every channel; silence when it runs dry."""

    def __init__(self, endpoint: Endpoint, block_frames: int, latency_s: float | None) -> None:
        super().__init__(endpoint, block_frames, latency_s)
        self.ring = SpscRing(int(RING_SECONDS * self.rate))
        self._scratch = np.zeros(MAX_CALLBACK_FRAMES, dtype=np.float32)

    stream_class = "OutputStream"

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if not self._callback_thread:
            self._callback_thread = threading.get_native_id()
        n = self.ring.read_into(self._scratch[: min(frames, MAX_CALLBACK_FRAMES)])
        outdata[:n] = self._scratch[:n, None]
        outdata[n:] = 0.0
        if status.output_underflow:
            self.status_flags += 1
        if time_info.outputBufferDacTime > 0:
            # time from leaving the ring to the DAC, for the block's middle sample
            self.latency.add(time_info.outputBufferDacTime - time_info.currentTime + 0.5 * frames / self.rate)
        self.latency.last_callback = time.monotonic()
        self.callbacks += 1


class FileSource:
    """A sound file as a capture device: interleaved frames into ``ring``."""

    device = False

    def __init__(self, endpoint: Endpoint, realtime: bool) -> None:
        assert endpoint.path is not None
        self.endpoint = endpoint
        self.rate = endpoint.sample_rate
        self.channels = endpoint.channels
        self.realtime = realtime
        self._block = max(1, int(FILE_BLOCK_S * self.rate))
        self.ring = SpscRing(int(RING_SECONDS * self.rate) * self.channels)
        self.status_flags = self.gap_samples = 0
        self._file: Any = None
        self._eof = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        import soundfile

        self._file = soundfile.SoundFile(str(self.endpoint.path))
        self._eof = False

    def start(self, prefill: int = 0) -> None:
        """Start the pacing thread (real-time mode); ``prefill`` is ignored."""
        if self.realtime:
            self._stop.clear()
            self._thread = threading.Thread(target=self._pace, name="rtenhance-file-source", daemon=True)
            self._thread.start()

    def _read_block(self) -> None:
        block = self._file.read(self._block, dtype="float32", always_2d=True)
        if block.shape[0] == 0:
            self._eof = True
            return
        self.ring.write(block.reshape(-1))

    def _pace(self) -> None:
        start = time.monotonic()
        blocks = 0
        while not self._stop.is_set() and not self._eof:
            self._read_block()
            blocks += 1
            delay = start + blocks * self._block / self.rate - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)

    def wait_input(self, samples: int, expected_s: float) -> None:
        """Sleep ``expected_s`` (real-time mode: the pacing thread is due to deliver ``samples`` by then)."""
        time.sleep(expected_s)

    def pump(self) -> None:
        """Fast mode: read as much of the file as the ring takes now."""
        if not self.realtime:
            while not self._eof and self.ring.free >= self._block * self.channels:
                self._read_block()

    @property
    def exhausted(self) -> bool:
        """The whole file has been read into the ring: no more input will arrive."""
        return self._eof

    def device_latency_s(self) -> float:
        return 0.0

    def fault(self, stall_s: float) -> str | None:
        return None

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._file is not None:
            self._file.close()
            self._file = None


class FileSink:
    """A WAV file as a playback device (mono); no ring, no clock: written as the worker produces."""

    device = False
    cushion_s = 0.0

    def __init__(self, endpoint: Endpoint, sample_rate: int) -> None:
        assert endpoint.path is not None
        self.endpoint = endpoint
        self.rate = sample_rate
        self.status_flags = self.gap_samples = 0
        self.ring: SpscRing | None = None
        self._file: Any = None

    @property
    def realtime(self) -> bool:
        return False

    def open(self) -> None:
        import soundfile

        if self._file is None:
            self._file = soundfile.SoundFile(str(self.endpoint.path), "w", samplerate=self.rate, channels=1)

    def start(self, prefill: int = 0) -> None:
        """Files need no start and no prefill."""

    def write(self, samples: np.ndarray) -> None:
        self._file.write(samples)

    def depth_samples(self) -> int:
        return 0

    def underflows(self) -> int:
        return 0

    def ring_underflows(self) -> int:
        return 0

    def device_latency_s(self) -> float:
        return 0.0

    def fault(self, stall_s: float) -> str | None:
        return None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
