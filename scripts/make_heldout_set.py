"""Make the second held-out test set: speakers, noise classes and SNRs that ``dev/`` does not contain.

    python scripts/make_heldout_set.py [--data ../shared/data/train] [--out data/heldout] [--config config/train.yaml]

The speakers and noise categories are the training config's ``data.exclude_speakers`` and
``data.exclude_noise_categories``, which training leaves out altogether (``dev/`` has RAVDESS and EmoDB
speakers with ESC-50 noise at 0/5/10/15 dB; this set has VCC2016, CMU ARCTIC and LibriSpeech speakers
with kitchen, tap, dishes, typing, engine, train, rain, crowd and applause recordings at -5/2.5/7.5/12.5/20
dB). Deterministic: the same files every time (seeded), so the audio is not committed. Writes
OUT/clean/ and OUT/noisy/ (16 kHz FLAC, same names) and OUT/clean/manifest.tsv (``snr_db``, ``speaker``,
``noise`` columns, which ``rtenhance eval`` groups by).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rtenhance.train.config import load_train_config  # noqa: E402
from rtenhance.train.corpus import read_folder  # noqa: E402
from rtenhance.train.mixing import noise_segment, power, scale_to_snr  # noqa: E402

RATE = 16000
SEED = 20261129
PAIRS = 100
SNRS_DB = (-5.0, 2.5, 7.5, 12.5, 20.0)
LEVEL_DBFS = (-40.0, -15.0)  # RMS of the noisy mixture
MIN_SECONDS = 1.5  # shorter utterances are skipped
MAX_SECONDS = 6.0  # longer ones are cut
POOL_BELOW = 20  # speakers with fewer clips share one turn of the speaker rotation
PEAK_LIMIT = 0.99
COLUMNS = ("file", "seconds", "subset", "speaker", "snr_db", "noise")


def make(data: Path, out: Path, config: Path) -> int:
    """Write the set; returns the number of pairs."""
    cfg = load_train_config(config).data
    speakers, categories = set(cfg.exclude_speakers), set(cfg.exclude_noise_categories)
    speech = [c for c in read_folder(data / "clean", RATE, cfg.min_clean_snr_db) if c.speaker in speakers]
    speech = [c for c in speech if c.samples.shape[0] >= MIN_SECONDS * RATE]
    noise = [c for c in read_folder(data / "noise", RATE) if c.speaker in categories]
    if not speech or not noise:
        raise SystemExit(f"no held-out speech ({len(speech)} clips) or noise ({len(noise)} clips) in {data}")
    by_speaker: dict[str, list] = {}
    for clip in speech:
        by_speaker.setdefault(clip.speaker, []).append(clip)
    pooled = [c for clips in by_speaker.values() if len(clips) < POOL_BELOW for c in clips]
    by_speaker = {k: v for k, v in by_speaker.items() if len(v) >= POOL_BELOW} | ({"pooled": pooled} if pooled else {})
    rng = np.random.default_rng(SEED)
    (out / "clean").mkdir(parents=True, exist_ok=True)
    (out / "noisy").mkdir(parents=True, exist_ok=True)
    rows = []
    names = sorted(by_speaker)
    for i in range(PAIRS):
        clips = by_speaker[names[i % len(names)]]
        clip = clips[rng.integers(len(clips))]
        n = min(clip.samples.shape[0], int(MAX_SECONDS * RATE))
        start = rng.integers(clip.samples.shape[0] - n + 1)
        clean = clip.samples[start : start + n].astype(np.float64)
        noise_clip = noise[i % len(noise)]
        snr = SNRS_DB[i % len(SNRS_DB)]
        noisy_part = scale_to_snr(clean, noise_segment(rng, (noise_clip,), n), snr).astype(np.float64)
        noisy = clean + noisy_part
        gain = 10.0 ** (rng.uniform(*LEVEL_DBFS) / 20.0) / np.sqrt(power(noisy))
        gain = min(gain, PEAK_LIMIT / float(np.max(np.abs(noisy))))
        name = f"ho_{i:03d}_{clip.speaker}_{noise_clip.speaker}_snr{snr:g}.flac"
        sf.write(out / "clean" / name, (gain * clean).astype(np.float32), RATE, subtype="PCM_16")
        sf.write(out / "noisy" / name, (gain * noisy).astype(np.float32), RATE, subtype="PCM_16")
        rows.append((name, f"{n / RATE:.3f}", "heldout2", clip.speaker, f"{snr:g}", noise_clip.name))
    with open(out / "clean" / "manifest.tsv", "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return len(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "train")
    parser.add_argument("--out", type=Path, default=REPO / "data" / "heldout")
    parser.add_argument("--config", type=Path, default=REPO / "config" / "train.yaml")
    args = parser.parse_args()
    count = make(args.data, args.out, args.config)
    print(f"wrote {count} pairs to {args.out}/clean and {args.out}/noisy")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
