"""--output virtual-mic: a source named "rtenhance" that records the enhanced audio, gone after SIGTERM."""

from __future__ import annotations

import time

import soundfile as sf

from rtenhance.audio.devices import VIRTUAL_SINK, VIRTUAL_SOURCE
from tests.audio.daemon_support import (
    DaemonProcess, aligned_correlation, check_skipped_hops, daemon_env, noisy_speech, weights_path, write_wav,
)
from tests.audio.pulse_support import RATE, stop_recording

MIN_CORRELATION = 0.9  # the enhanced recording against the high-SNR input it came from, window by window
RECORDER_START_S = 2.5  # the remapped source may deliver its first 2 s block late: parec is running by then


def test_virtual_mic_records_enhanced_audio_and_disappears(sound_server, tmp_path):
    modules_before = sound_server.module_lines()
    speech = noisy_speech(4.0, tmp_path, snr_db=15)
    wav = write_wav(tmp_path / "speech.wav", speech)
    daemon = DaemonProcess(
        ["--input", "pulse:A.monitor", "--output", "virtual-mic", "--weights", str(weights_path(tmp_path)),
         "--stats-json", str(tmp_path / "stats.jsonl"), "--set", "stats.interval_s=1"],
        daemon_env(sound_server.env), tmp_path / "daemon.log",
    )
    try:
        daemon.wait_ready()
        assert VIRTUAL_SOURCE in sound_server.sources()
        recorder = sound_server.record(VIRTUAL_SOURCE, tmp_path / "mic.wav")
        time.sleep(RECORDER_START_S)
        start = time.time()
        sound_server.play(wav).wait(timeout=30)
        time.sleep(0.3)
        stop_recording(recorder)
        end = time.time()
        time.sleep(1.1)
    finally:
        code, elapsed = daemon.terminate()
    assert code == 0, daemon.log()[-2000:]
    assert elapsed < 1.0, elapsed
    assert VIRTUAL_SOURCE not in sound_server.sources()
    assert f"{VIRTUAL_SINK}.monitor" not in sound_server.sources()
    assert sound_server.module_lines() == modules_before

    recorded, rate = sf.read(str(tmp_path / "mic.wav"), dtype="float32", always_2d=True)
    from rtenhance.dsp.resample import resample

    reference = resample(speech, 16000, RATE)
    # window by window: the daemon may have dropped or inserted a few ms to hold its latency meanwhile
    corr = aligned_correlation(reference, recorded[:, 0], RATE, max_lag_s=RECORDER_START_S + 1.5)
    print(f"virtual mic correlation {corr:.3f}")
    assert corr >= MIN_CORRELATION, corr
    check_skipped_hops(tmp_path / "stats.jsonl", start, end, daemon.log())
