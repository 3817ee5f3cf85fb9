"""``rtenhance demo``: enhance the bundled noisy clip and say where the result is."""

from __future__ import annotations

import argparse
from pathlib import Path

from rtenhance.audiofile import output_encoding, read_audio, write_audio_atomic
from rtenhance.file_enhance import enhance_samples
from rtenhance.weights import NoWeightsError, resolve_model

DEMO_CLIP = Path(__file__).resolve().parents[1] / "data" / "demo_noisy.wav"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="enhance the bundled noisy demo clip")
    p.add_argument("--output", type=Path, default=Path("demo-output"), help="folder for the results")
    p.add_argument("--weights", help="checkpoint to use; default: bundled weights")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        model, name = resolve_model(args.weights)
    except NoWeightsError:
        from rtenhance.model.gtcrn import GTCRN

        model, name = GTCRN().eval(), "untrained"
        print("demo: no bundled weights yet, so this runs a freshly initialised (untrained) model;"
              " pass --weights PATH for real enhancement")
    audio = read_audio(DEMO_CLIP)
    noisy = args.output / "demo_noisy.wav"
    enhanced = args.output / "demo_enhanced.wav"
    write_audio_atomic(noisy, audio.samples, audio.sample_rate, *output_encoding(noisy, audio))
    out = enhance_samples(model, audio.samples, audio.sample_rate, streaming=True)
    write_audio_atomic(enhanced, out, audio.sample_rate, *output_encoding(enhanced, audio))
    print(f"demo: input  {noisy}")
    print(f"demo: output {enhanced} (weights: {name}, streaming path)")
    return 0
