"""``rtenhance enhance IN OUT``: enhance a file, or every audio file of a directory, to new files.

Before anything is computed: outputs that exist are refused (``--overwrite`` replaces them), partial files
of interrupted runs are removed, and each output folder is checked to be writable. A directory is enhanced
by ``--jobs`` worker processes; a bad file is reported with its reason and the others still run, and the
exit status counts them. Ctrl-C or SIGTERM leaves no partial file behind.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING


from rtenhance.audio_output import check_writable_folder, remove_stale_parts
from rtenhance.audiofile import AUDIO_EXTENSIONS, probe_audio
from rtenhance.backends import BACKENDS, DEFAULT_BACKEND
from rtenhance.batch_enhance import Job, JobOptions, Outcome, available_cores, run_one, run_parallel
from rtenhance.cli import UsageError
from rtenhance.cli.progress import tqdm

if TYPE_CHECKING:
    from rtenhance.weights.model_weights import Model

PROGRESS_MIN_SECONDS = 30.0  # a single file this long gets a progress bar
EXIT_SOME_FAILED = 1
EXIT_TERMINATED = 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that the same clean-up as for Ctrl-C runs."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("enhance", help="enhance an audio file (or a directory of them)")
    p.add_argument("input", type=Path, help="input audio file or directory")
    p.add_argument("output", type=Path, help="output file (or directory when the input is one)")
    p.add_argument("--weights", help="checkpoint (rtenhance or published GTCRN); default: bundled weights")
    p.add_argument("--streaming", action="store_true", help="run the live path (causal framing) instead of the offline one")
    p.add_argument("--backend", default=DEFAULT_BACKEND, choices=BACKENDS, help="inference backend of the frame steps")
    p.add_argument("--jobs", type=int, default=0, metavar="N", help="files enhanced in parallel (default: all cores)")
    p.add_argument("--overwrite", action="store_true", help="replace output files that already exist")
    p.set_defaults(run=run)


def _jobs(src: Path, dst: Path) -> tuple[list[Job], bool]:
    """(jobs, directory mode); refuses any output that would replace an input."""
    if src.is_dir():
        if dst.exists() and not dst.is_dir():
            raise UsageError(f"{dst}: the input is a directory, so the output must be a directory")
        if _same(dst, src):
            raise UsageError(f"{dst}: output directory equals the input directory; choose another")
        files = sorted(p for p in src.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS and not p.is_dir())
        if not files:
            raise UsageError(f"{src}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in this directory")
        return [Job(f, dst / f.name) for f in files], True
    if not src.exists() and not src.is_symlink():
        raise UsageError(f"{src}: no such file")
    if dst.is_dir():
        dst = dst / src.name
    if _same(dst, src):
        raise UsageError(f"{dst}: output equals the input; refusing to overwrite it")
    return [Job(src, dst)], False


def _same(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _refuse_existing(jobs: list[Job]) -> None:
    existing = [job.dst for job in jobs if job.dst.exists() or job.dst.is_symlink()]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise UsageError(f"{existing[0]}: exists{more} and was not written by this run; pass --overwrite to replace")


def _prepare_folders(folders: list[Path]) -> None:
    for folder in folders:
        removed = remove_stale_parts(folder)
        if removed:
            print(f"rtenhance enhance: removed {removed} partial file(s) left by an interrupted run in {folder}",
                  file=sys.stderr)
        check_writable_folder(folder)


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def run(args: argparse.Namespace) -> int:
    jobs, directory = _jobs(args.input, args.output)
    if not args.overwrite:
        _refuse_existing(jobs)
    folders = sorted({job.dst.parent for job in jobs})
    _prepare_folders(folders)
    from rtenhance.weights import resolve_model

    model, name = resolve_model(args.weights)
    options = JobOptions(args.streaming, args.backend, args.overwrite)
    workers = min(len(jobs), args.jobs if args.jobs > 0 else available_cores())
    previous = signal.signal(signal.SIGTERM, _terminate)
    start = time.monotonic()
    try:
        with warnings.catch_warnings():  # overflowing weights warn from NumPy; the output check reports them
            warnings.simplefilter("ignore", RuntimeWarning)
            outcomes = _run_jobs(model, jobs, options, workers, directory)
    except Terminated:
        return EXIT_TERMINATED
    finally:
        signal.signal(signal.SIGTERM, previous)
        for folder in folders:
            remove_stale_parts(folder)  # what killed workers could not remove
    elapsed = time.monotonic() - start
    failed = [o for o in outcomes if o.error is not None]
    seconds = sum(o.seconds for o in outcomes)
    where = args.output if directory else jobs[0].dst
    print(f"enhanced {len(outcomes) - len(failed)} file(s), {seconds:.1f} s of audio in {elapsed:.1f} s "
          f"({seconds / max(elapsed, 1e-9):.1f} s of audio per second) with weights {name} -> {where}")
    if failed:
        print(f"rtenhance enhance: {len(failed)} of {len(jobs)} file(s) failed", file=sys.stderr)
        return EXIT_SOME_FAILED
    return 0


def _seconds(path: Path) -> float:
    """Audio seconds in ``path`` for the progress bar; 0 for a file that cannot be read (reported in its turn)."""
    try:
        return probe_audio(path).seconds
    except ValueError:
        return 0.0


def _run_jobs(model: Model, jobs: list[Job], options: JobOptions, workers: int, directory: bool) -> list[Outcome]:
    """Run every job, printing each failure as it happens; a fatal one (the output cannot be written)
    stops the run. In single-file mode a failure is raised as the command's one-line error."""
    show = sys.stderr.isatty()
    if not directory:
        job = jobs[0]
        info = probe_audio(job.src)
        long_file = info.seconds >= PROGRESS_MIN_SECONDS
        with tqdm(total=round(info.seconds, 1), unit="s", desc=job.src.name, disable=not (show and long_file)) as bar:
            outcome = run_one(model, job, options, lambda frames: bar.update(frames / info.sample_rate))
        if outcome.error is not None:
            raise UsageError(outcome.error)
        return [outcome]
    total = sum(_seconds(job.src) for job in jobs)
    outcomes: list[Outcome] = []
    results = (run_one(model, job, options) for job in jobs) if workers == 1 else run_parallel(model, jobs, options, workers)
    with tqdm(total=round(total, 1), unit="s", desc=f"{len(jobs)} files", disable=not show) as bar:
        for outcome in results:
            outcomes.append(outcome)
            bar.update(round(outcome.seconds, 1))
            if outcome.fatal:
                raise UsageError(f"{outcome.error}; stopped after {len(outcomes)} of {len(jobs)} files")
            if outcome.error is not None:
                tqdm.write(f"rtenhance enhance: error: {outcome.error}", file=sys.stderr)
    return outcomes
