"""End-to-end tests of ``rtenhance serve``: real WebSocket clients on 127.0.0.1 against a running server."""

import asyncio
import json

import numpy as np
import pytest

websockets = pytest.importorskip("websockets")
from websockets.asyncio.client import connect  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

from rtenhance.backends import make_stepper  # noqa: E402
from rtenhance.enhancer import Enhancer  # noqa: E402
from rtenhance.serve.config import ServeConfig  # noqa: E402
from rtenhance.serve.protocol import Hello, decode_audio, encode_audio  # noqa: E402
from tests.conftest import noise_signal, randomised_model  # noqa: E402

HOP = 256
TOLERANCE = 1e-5
TEST_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def model():
    from rtenhance.backends.native.batch import load_batch_library
    from rtenhance.native_build import NativeUnavailable

    try:
        load_batch_library()
    except NativeUnavailable as exc:
        pytest.skip(f"the batched native step is unavailable here: {exc}")
    return randomised_model(seed=2)


def _run(model, scenario, **settings) -> None:
    """Run ``scenario(uri)`` against a server on a free port of 127.0.0.1."""
    from rtenhance.serve.server import StreamServer

    async def main() -> None:
        config = ServeConfig(port=0, **settings)
        async with StreamServer(model, config) as server:
            await asyncio.wait_for(scenario(f"ws://127.0.0.1:{server.port}", server), TEST_TIMEOUT_S)

    asyncio.run(main())


def _hello(fmt: str = "float32", rate: int = 16000) -> str:
    return json.dumps({"type": "hello", "sample_rate": rate, "format": fmt})


async def _good_client(uri: str, x: np.ndarray, fmt: str = "float32") -> np.ndarray:
    """Streams x in hop-sized messages (paced a little faster than real time); returns all it got back."""
    hello = Hello(fmt)
    async with connect(uri) as ws:
        await ws.send(_hello(fmt))
        ready = json.loads(await ws.recv())
        assert ready["type"] == "ready" and ready["hop_samples"] == HOP

        async def sender() -> None:
            for start in range(0, x.shape[0], HOP):
                await ws.send(encode_audio(x[start : start + HOP], hello))
                await asyncio.sleep(0.008)

        task = asyncio.create_task(sender())
        parts = [decode_audio(await ws.recv(), hello) for _ in range(x.shape[0] // HOP)]
        await task
    return np.concatenate(parts)


def _expected(model, x: np.ndarray) -> np.ndarray:
    return Enhancer(make_stepper(model, "native"), model.config.stft).feed(x)


def test_clients_get_what_their_own_enhancer_gives(model) -> None:
    inputs = [noise_signal(1.0, seed=k)[: 40 * HOP] * (k + 1) / 2 for k in range(3)]
    results = {}

    async def scenario(uri, server) -> None:
        got = await asyncio.gather(*(_good_client(uri, x) for x in inputs), _good_client(uri, inputs[0] / 2, "pcm16"))
        results.update(enumerate(got))
        assert server.stats.passthrough == 0

    _run(model, scenario, max_backlog_hops=1000)
    for k, x in enumerate(inputs):
        np.testing.assert_allclose(results[k], _expected(model, x), rtol=0, atol=TOLERANCE)
    pcm_in = decode_audio(encode_audio(inputs[0] / 2, Hello("pcm16")), Hello("pcm16"))
    np.testing.assert_allclose(results[3], _expected(model, pcm_in), rtol=0, atol=1.01 / 32768)


async def _closed_with(uri: str, messages: list, abort_after: bool = False) -> tuple[int, str]:
    """Sends the messages, then reads until the server closes; returns its close code and reason."""
    async with connect(uri) as ws:
        for message in messages:
            await ws.send(message)
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as exc:
            assert exc.rcvd is not None, "the server dropped the connection without a close frame"
            return exc.rcvd.code, exc.rcvd.reason


async def _abrupt(uri: str) -> None:
    ws = await connect(uri)
    await ws.send(_hello())
    await ws.recv()
    await ws.send(np.zeros(3 * HOP, "<f4").tobytes())
    await asyncio.sleep(0.1)
    ws.transport.abort()  # no closing handshake


async def _slow_reader(uri: str) -> tuple[int, str]:
    """Sends 160 s of audio at once and reads nothing for a while: the backlog passes straight back."""
    async with connect(uri, max_queue=4) as ws:
        await ws.send(_hello())
        await ws.recv()
        chunk = np.zeros(16000 * 16, "<f4").tobytes()
        for _ in range(10):
            await ws.send(chunk)
        await asyncio.sleep(1.0)
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as exc:
            assert exc.rcvd is not None
            return exc.rcvd.code, exc.rcvd.reason


def test_bad_clients_get_clear_close_reasons_and_do_not_disturb_a_good_one(model) -> None:
    x = noise_signal(2.0, seed=9)[: 100 * HOP]
    outcome = {}

    async def scenario(uri, server) -> None:
        good = asyncio.create_task(_good_client(uri, x))
        outcome["closes"] = await asyncio.gather(
            _closed_with(uri, [np.zeros(HOP, "<f4").tobytes()]),
            _closed_with(uri, ["{oops"]),
            _closed_with(uri, [_hello(rate=44100)]),
            _closed_with(uri, [_hello("pcm16"), b"\x00\x01\x02"]),
            _closed_with(uri, [_hello(), np.array([np.inf] * 4, "<f4").tobytes()]),
            _closed_with(uri, [_hello(), "more text"]),
            _closed_with(uri, []),  # says nothing
            _slow_reader(uri),
            _abrupt(uri),
        )
        outcome["good"] = await good
        outcome["stats"] = server.stats
        await asyncio.sleep(0.1)
        outcome["sessions_left"] = server.session_count

    _run(model, scenario, max_backlog_hops=1000 // 2, max_unsent_s=0.5, hello_timeout_s=1.0)
    closes = outcome["closes"]
    expected = [
        (1002, "hello text message before any audio"),
        (1007, "hello is not JSON"),
        (1003, "sample_rate 44100 is not supported"),
        (1007, "3 bytes is not whole pcm16 samples"),
        (1007, "non-finite"),
        (1003, "only binary audio messages"),
        (1008, "no hello within 1 s"),
        (1008, "slow reader"),
    ]
    for (code, reason), (want_code, words) in zip(closes, expected):
        assert code == want_code and words in reason, (code, reason)
    np.testing.assert_allclose(outcome["good"], _expected(model, x), rtol=0, atol=TOLERANCE)
    stats = outcome["stats"]
    assert stats.slow_readers == 1 and stats.abrupt >= 1
    assert outcome["sessions_left"] == 0


def test_a_full_server_refuses_more_clients(model) -> None:
    async def scenario(uri, server) -> None:
        async with connect(uri) as first:
            await first.send(_hello())
            await first.recv()
            code, reason = await _closed_with(uri, [_hello()])
            assert (code, reason) == (1013, "server full: 1 streams")

    _run(model, scenario, max_streams=1)
