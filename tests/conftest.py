"""Shared test helpers: where ../shared is, a skip for tests that need it, and the private sound servers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtenhance.audio.realtime.huge_pages import disable_huge_pages
from tests.audio.pipewire_support import start_pipewire_server
from tests.audio.pulse_support import start_pulse_server
from tests.audio.sound_server import SoundServer, stop_server

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RTENHANCE_SHARED", REPO.parent / "shared"))
REFERENCE = SHARED / "reference"
DATA = SHARED / "data"
# Set by the sanitizer job (tests/test_native_sanitizers.py) to the sanitizer runtime it preloads; a test that
# starts a Python child which loads rtenhance's C libraries preloads it there too (they are instrumented).
SANITIZER_PRELOAD_ENV = "RTENHANCE_TEST_SANITIZER_PRELOAD"


def python_child_env() -> dict[str, str]:
    """The environment for a Python child process that loads rtenhance's C libraries: this one's, plus the
    sanitizer runtime when the sanitizer job runs."""
    env = dict(os.environ)
    if env.get(SANITIZER_PRELOAD_ENV):
        env["LD_PRELOAD"] = env[SANITIZER_PRELOAD_ENV]
    return env


@pytest.fixture(scope="session")
def pulse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoundServer]:
    """A private PulseAudio server with sinks A and B (see tests/audio/sound_server.py); stopped after the
    session."""
    server = start_pulse_server(tmp_path_factory.mktemp("pulse"))
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="session")
def pipewire_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoundServer]:
    """A private PipeWire (pipewire, wireplumber, pipewire-pulse) with sinks A and B; stopped after the session."""
    server = start_pipewire_server(tmp_path_factory.mktemp("pipewire"))
    try:
        yield server
    finally:
        stop_server(server)


def need_shared(*parts: str) -> Path:
    """Path under ../shared, or skip the calling test with the reason when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (the shared reference/data folder beside the repository), which is absent")
    return path


def randomised_model(config=None, seed: int = 0):
    """A GTCRN in eval mode whose BatchNorm statistics and PReLU slopes are random too (not the defaults)."""
    import torch

    from rtenhance.model import GTCRN

    torch.manual_seed(seed)
    model = GTCRN(config)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
            elif isinstance(module, torch.nn.PReLU):
                module.weight.uniform_(0.0, 0.5)
    return model.eval()


def noise_signal(seconds: float, seed: int = 0, rate: int = 16000):
    """Deterministic speech-like test signal at a typical speech level (about -29 dBFS RMS): modulated
    harmonics plus noise, float32 (N,)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t) ** 2
    voiced = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) / k for k, f in enumerate((140, 280, 420, 700, 1100), 1))
    x = 0.05 * envelope * voiced + 0.0125 * rng.standard_normal(t.shape[0])
    return x.astype(np.float32)


def pytest_configure(config: pytest.Config) -> None:
    """Keep khugepaged out of the test process's memory, as the daemon keeps it out of its own
    (``rtenhance.audio.realtime.huge_pages``): every 10 s it collapsed this process's pages (PyTorch's and
    NumPy's, 18 MB of huge pages) in 5 ms stretches that no real-time thread could preempt, and the live
    PipeWire tests read the misses of the sound server's and the daemon's audio threads behind it (every
    10.24 s, in most runs of the steady cell) as the daemon's. The sound servers, producers and daemons the
    tests start inherit the setting."""
    disable_huge_pages()


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Run every test with one PyTorch thread: eager steps are tiny, and several threads on a busy
    2-core machine only add contention (many times slower)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
