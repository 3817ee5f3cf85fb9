import json

import numpy as np
import pytest

from rtenhance.serve.protocol import (
    CLOSE_INVALID_PAYLOAD,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_UNSUPPORTED,
    Hello,
    ProtocolError,
    decode_audio,
    encode_audio,
    parse_hello,
)


def test_a_valid_hello_is_accepted_in_both_formats() -> None:
    for fmt in ("pcm16", "float32"):
        assert parse_hello(json.dumps({"type": "hello", "sample_rate": 16000, "format": fmt})) == Hello(fmt)


@pytest.mark.parametrize(
    ("message", "code", "words"),
    [
        (b"\x00\x01", CLOSE_PROTOCOL_ERROR, "hello text message before"),
        ("{not json", CLOSE_INVALID_PAYLOAD, "not JSON"),
        ("[1, 2]", CLOSE_INVALID_PAYLOAD, "JSON object"),
        ('{"type": "hello", "sample_rate": 16000, "format": "pcm16", "rate": 1}', CLOSE_INVALID_PAYLOAD, "'rate' unknown"),
        ('{"type": "audio", "sample_rate": 16000, "format": "pcm16"}', CLOSE_INVALID_PAYLOAD, '"type": "hello"'),
        ('{"type": "hello", "sample_rate": 44100, "format": "pcm16"}', CLOSE_UNSUPPORTED, "sample_rate 44100"),
        ('{"type": "hello", "sample_rate": 16000, "format": "mp3"}', CLOSE_UNSUPPORTED, "format 'mp3'"),
    ],
)
def test_bad_hellos_name_the_problem(message, code, words) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_hello(message)
    assert caught.value.code == code
    assert words in caught.value.reason


def test_audio_round_trips_and_bad_audio_is_refused() -> None:
    x = np.array([0.0, 0.5, -0.5, -1.0, 0.999], dtype=np.float32)
    for fmt, atol in (("float32", 0.0), ("pcm16", 1 / 32768)):
        hello = Hello(fmt)
        np.testing.assert_allclose(decode_audio(encode_audio(x, hello), hello), x, rtol=0, atol=atol)
    assert np.frombuffer(encode_audio(np.array([2.0, -2.0], np.float32), Hello("pcm16")), "<i2").tolist() == [32767, -32768]
    with pytest.raises(ProtocolError, match="3 bytes is not whole pcm16 samples") as odd:
        decode_audio(b"\x00\x01\x02", Hello("pcm16"))
    assert odd.value.code == CLOSE_INVALID_PAYLOAD
    with pytest.raises(ProtocolError, match="non-finite"):
        decode_audio(np.array([0.0, np.nan], "<f4").tobytes(), Hello("float32"))
    with pytest.raises(ProtocolError, match="only binary audio") as text:
        decode_audio("hello again", Hello("float32"))
    assert text.value.code == CLOSE_UNSUPPORTED
