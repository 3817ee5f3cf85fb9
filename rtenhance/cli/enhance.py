"""``rtenhance enhance IN OUT``: enhance a file, or every audio file of a directory, to a new file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rtenhance.audiofile import AUDIO_EXTENSIONS, read_audio, output_encoding, write_audio_atomic
from rtenhance.backends import BACKENDS, DEFAULT_BACKEND
from rtenhance.cli import UsageError
from rtenhance.cli.progress import tqdm
from rtenhance.file_enhance import enhance_samples
from rtenhance.weights import ModelWeights, resolve_model

PROGRESS_MIN_SECONDS = 30.0  # a per-file progress bar is shown for inputs at least this long


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("enhance", help="enhance an audio file (or a directory of them)")
    p.add_argument("input", type=Path, help="input audio file or directory")
    p.add_argument("output", type=Path, help="output file (or directory when the input is one)")
    p.add_argument("--weights", help="checkpoint (rtenhance or published GTCRN); default: bundled weights")
    p.add_argument("--streaming", action="store_true", help="run the frame-by-frame streaming path")
    p.add_argument("--backend", default=DEFAULT_BACKEND, choices=BACKENDS, help="inference backend for --streaming")
    p.set_defaults(run=run)


def _pairs(src: Path, dst: Path) -> list[tuple[Path, Path]]:
    """(input, output) file pairs; refuses any output that would replace an input."""
    if src.is_dir():
        if dst.exists() and not dst.is_dir():
            raise UsageError(f"{dst}: the input is a directory, so the output must be a directory")
        if dst.resolve() == src.resolve():
            raise UsageError(f"{dst}: output directory equals the input directory; choose another")
        files = sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
        if not files:
            raise UsageError(f"{src}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in this directory")
        return [(f, dst / f.name) for f in files]
    if not src.exists():
        raise UsageError(f"{src}: no such file")
    if dst.is_dir():
        dst = dst / src.name
    if dst.resolve() == src.resolve():
        raise UsageError(f"{dst}: output equals the input; refusing to overwrite it")
    return [(src, dst)]


def _enhance_file(model: ModelWeights, src: Path, dst: Path, args: argparse.Namespace, show_bar: bool) -> None:
    audio = read_audio(src)
    fmt, subtype = output_encoding(dst, audio)
    seconds = audio.samples.shape[0] / audio.sample_rate
    model_rate = model.config.stft.sample_rate
    total = int(round(seconds * model_rate)) * audio.samples.shape[1]
    with tqdm(
        total=total, unit="smp", unit_scale=True, desc=src.name, disable=not (show_bar and seconds >= PROGRESS_MIN_SECONDS)
    ) as bar:
        enhanced = enhance_samples(model, audio.samples, audio.sample_rate, args.streaming, args.backend, bar.update)
    write_audio_atomic(dst, enhanced, audio.sample_rate, fmt, subtype)


def run(args: argparse.Namespace) -> int:
    pairs = _pairs(args.input, args.output)
    model, name = resolve_model(args.weights)
    show_bar = sys.stderr.isatty()
    for src, dst in tqdm(pairs, desc="files", unit="file", disable=len(pairs) < 2 or not show_bar):
        _enhance_file(model, src, dst, args, show_bar)
    where = args.output if len(pairs) > 1 else pairs[0][1]
    print(f"enhanced {len(pairs)} file(s) with weights {name} -> {where}")
    return 0
