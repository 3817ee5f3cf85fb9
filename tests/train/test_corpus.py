"""Reading training folders and splitting them into training and validation."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from rtenhance.train.config import DataConfig
from rtenhance.train.corpus import Clip, CorpusError, read_folder, split_corpus
from tests.train.helpers import RATE


def _clip(name: str, speaker: str = "") -> Clip:
    return Clip(name, np.ones(10, dtype=np.float32), speaker)


def test_read_folder_uses_manifest_and_snr_filter(tmp_path):
    for name in ("a.flac", "b.flac", "c.flac"):
        sf.write(tmp_path / name, np.full(100, 0.1, dtype=np.float32), RATE)
    (tmp_path / "manifest.tsv").write_text(
        "file\tspeaker\test_snr_db\na.flac\tspk1\t40\nb.flac\tspk2\t12\nc.flac\tspk2\t\n"
    )
    clips = read_folder(tmp_path, RATE, min_snr_db=20.0)
    assert [(c.name, c.speaker) for c in clips] == [("a.flac", "spk1"), ("c.flac", "spk2")]
    assert clips[0].samples.dtype == np.float32 and clips[0].samples.shape == (100,)


def test_read_folder_without_manifest_and_wrong_rate(tmp_path):
    sf.write(tmp_path / "x.wav", np.zeros(50, dtype=np.float32), RATE)
    assert [c.name for c in read_folder(tmp_path, RATE)] == ["x.wav"]
    sf.write(tmp_path / "y.wav", np.zeros(50, dtype=np.float32), 8000)
    with pytest.raises(CorpusError, match="8000 Hz"):
        read_folder(tmp_path, RATE)
    with pytest.raises(CorpusError, match="no such folder"):
        read_folder(tmp_path / "missing", RATE)


def test_split_holds_out_speakers_and_noise_fraction():
    speech = [_clip(f"s{i}", f"spk{i % 4}") for i in range(20)]
    noise = [_clip(f"n{i}") for i in range(20)]
    cfg = DataConfig(val_speakers=("spk1",), val_noise_fraction=0.1)
    train, val = split_corpus(speech, noise, [], cfg, seed=3)
    assert {c.speaker for c in val.speech} == {"spk1"}
    assert "spk1" not in {c.speaker for c in train.speech}
    assert len(val.noise) == 2 and not {c.name for c in val.noise} & {c.name for c in train.noise}
    again = split_corpus(speech, noise, [], cfg, seed=3)
    assert [c.name for c in again[1].noise] == [c.name for c in val.noise]


def test_split_without_speakers_holds_out_random_clips_and_rejects_unknown_speakers():
    speech = [_clip(f"s{i}") for i in range(20)]
    train, val = split_corpus(speech, [_clip("n")], [], DataConfig(val_speakers=(), val_clip_fraction=0.25), seed=0)
    assert len(val.speech) == 5 and len(train.speech) == 15
    with pytest.raises(CorpusError, match="val_speakers"):
        split_corpus(speech, [_clip("n")], [], DataConfig(val_speakers=("nobody",)), seed=0)
