"""Many files enhanced one after another or by a pool of worker processes, each failure reported per file.

Workers are forked from the process that loaded the model, so they share its weights and start at once.
They ignore SIGINT (Ctrl-C reaches the whole process group; the parent decides) and turn SIGTERM into an
exception, so that a worker stopped by the parent removes its partial file on the way out.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rtenhance.audiofile import AudioFileError, OutputError
from rtenhance.file_enhance import ProgressFn, enhance_file
from rtenhance.weights.model_weights import Model


@dataclass(frozen=True)
class Job:
    """One input file and the output it becomes."""

    src: Path
    dst: Path


@dataclass(frozen=True)
class JobOptions:
    """How every file is enhanced (see ``enhance_file``)."""

    streaming: bool
    backend: str
    overwrite: bool


@dataclass(frozen=True)
class Outcome:
    """What became of one job.

    Attributes:
        job: the job.
        seconds: seconds of audio enhanced (0 on failure).
        error: the one-line reason when the file failed, else None.
        fatal: the failure concerns the output itself (e.g. a full disk): later files would fail too.
    """

    job: Job
    seconds: float
    error: str | None = None
    fatal: bool = False


def available_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_one(model: Model, job: Job, options: JobOptions, progress: ProgressFn | None = None) -> Outcome:
    """Enhance one file; a bad file becomes an ``Outcome`` with its reason instead of an exception."""
    try:
        result = enhance_file(model, job.src, job.dst, options.streaming, options.backend, options.overwrite, progress)
    except OutputError as exc:
        return Outcome(job, 0.0, str(exc), fatal=True)
    except (AudioFileError, ValueError) as exc:
        return Outcome(job, 0.0, str(exc))
    return Outcome(job, result.seconds)


_worker_model: Model | None = None  # set in the parent before forking; the workers inherit it
_worker_options: JobOptions | None = None


class WorkerStopped(BaseException):
    """SIGTERM in a worker: unwinds it (removing its partial file) like an interruption."""


def _stop_worker(signum: int, frame: object) -> None:
    raise WorkerStopped()


def _init_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_worker)
    torch = sys.modules.get("torch")  # only when the model runs on a PyTorch backend
    if torch is not None:
        torch.set_num_threads(1)


def _work(job: Job) -> Outcome:
    assert _worker_model is not None and _worker_options is not None
    return run_one(_worker_model, job, _worker_options)


def run_parallel(model: Model, jobs: list[Job], options: JobOptions, workers: int) -> Iterator[Outcome]:
    """Outcomes in completion order from ``workers`` forked processes. Leaving the iteration early (an
    exception, Ctrl-C) terminates the workers, and each removes its partial file."""
    global _worker_model, _worker_options
    _worker_model, _worker_options = model, options
    context = multiprocessing.get_context("fork")
    with context.Pool(workers, initializer=_init_worker) as pool:
        yield from pool.imap_unordered(_work, jobs)
