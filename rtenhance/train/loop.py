"""The training loop: steps, learning-rate schedule, validation, checkpoints and exact resume.

``runs/NAME/last.pt`` holds everything needed to continue bit-for-bit (model, weight average, optimizer,
scheduler, step, torch RNG state, best metric; the data stream is a function of the step,
``rtenhance.train.mixing.StepBatches``); ``runs/NAME/best.pt`` is a
self-describing model-only checkpoint (``rtenhance.model.checkpoint``) of the weight average
(``rtenhance.train.ema``) at its best validation so far; ``train.log``
gets one line per logging interval and per validation.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from rtenhance.config import ConfigError, ModelConfig, from_dict, to_dict
from rtenhance.dsp.stft import istft, stft
from rtenhance.model.checkpoint import atomic_torch_save, save_checkpoint
from rtenhance.model.gtcrn import GTCRN
from rtenhance.train.config import OptimConfig, TrainConfig
from rtenhance.train.corpus import Corpus, load_corpora
from rtenhance.train.distributed import Distributed
from rtenhance.train.ema import WeightAverage
from rtenhance.train.global_batchnorm import use_global_batchnorm
from rtenhance.train.init_from import init_weights
from rtenhance.train.loss import LossTerms, hybrid_loss
from rtenhance.train.mixing import Mixer, StepBatches
from rtenhance.train.validation import ValidationSet, validate

STATE_FORMAT = "rtenhance-train-state"
STATE_VERSION = 1
LAST = "last.pt"
BEST = "best.pt"
LOG = "train.log"
VAL_SEED_OFFSET = 1_000_003  # the validation mixtures use seed + this, independent of training draws
PROGRESS_INTERVAL_S = 5.0  # minimum seconds between progress-bar refreshes
PREFETCH_BATCHES = 4  # batches each data worker process makes ahead

log = logging.getLogger(__name__)


class ResumeError(ValueError):
    """``--resume`` found no usable checkpoint, or one made for another model."""


def lr_factor(step: int, cfg: OptimConfig) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up, then halving every ``half_life_steps``."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    decay = 0.5 ** ((step - cfg.warmup_steps) / cfg.half_life_steps)
    return max(decay, cfg.min_lr / cfg.lr)


@dataclass
class StepResult:
    """Loss terms of one training step (floats) and its gradient norm before clipping."""

    loss: float
    ri: float
    mag: float
    neg_log_sisnr: float
    grad_norm: float


class Trainer:
    """Owns the model, the optimizer, the data stream and the run folder.

    Under ``torchrun`` every process builds a Trainer: the model is wrapped in DistributedDataParallel,
    each rank makes its share of every global batch (``StepBatches``), and only rank 0 validates, logs
    and writes checkpoints. The saved state does not depend on the number of processes, so a run may be
    resumed with another one.

    Args:
        cfg: the training configuration (``batch_size`` is the global batch).
        corpora: (training, validation) corpora; read from ``cfg.data`` when None.
        dist: this process's place in a distributed job (default: read from torchrun's environment).
        init_method: how the process group rendezvous ("env://" under torchrun).

    Raises:
        InitError: ``cfg.init_from`` cannot start this model.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        corpora: tuple[Corpus, Corpus] | None = None,
        dist: Distributed | None = None,
        init_method: str = "env://",
    ) -> None:
        self.cfg = cfg
        self.dist = dist or Distributed.from_env()
        self.device = self.dist.device(cfg.device)
        if self.device.type == "cpu":
            torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
        self.dist.start(self.device, init_method)
        torch.manual_seed(cfg.seed)
        self.model = GTCRN(cfg.model).to(self.device)
        self.init_sha256 = init_weights(self.model, cfg.init_from) if cfg.init_from else ""
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, cfg.optim))
        self.average = WeightAverage(self.model, cfg.optim.ema_decay)
        self.ddp = self._data_parallel() if self.dist.active else self.model
        train, val = corpora or load_corpora(cfg.data, cfg.model.stft.sample_rate, cfg.seed)
        rate = cfg.model.stft.sample_rate
        self.batches = StepBatches(
            train, cfg.augment, rate, cfg.seed, cfg.batch_size, cfg.data.segment_seconds,
            cfg.data.premixed_steps, self.dist.rank, self.dist.world_size,
        )
        val_mixer = Mixer(val, cfg.augment, rate, cfg.seed + VAL_SEED_OFFSET)
        self.val_set = ValidationSet.make(val_mixer, cfg.data.val_mixtures, cfg.data.val_seconds)
        self.step = 0
        self.best_metric = -math.inf
        self.best_step = -1
        self.wall_seconds = 0.0
        self.run_dir = cfg.run_dir

    def _data_parallel(self) -> torch.nn.Module:
        """The model in DistributedDataParallel, normalising over the global batch (own process group)."""
        use_global_batchnorm(self.model, torch.distributed.new_group())
        device_ids = [self.device] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)

    # ----- one step -------------------------------------------------------------------------------
    def compute_loss(self, model: torch.nn.Module, noisy: torch.Tensor, target: torch.Tensor) -> LossTerms:
        """Hybrid loss of ``model`` on (B, N) noisy and target waveforms (causal framing)."""
        stft_cfg = self.cfg.model.stft
        noisy_spec = stft(noisy, stft_cfg, causal=True)  # (B, F, T, 2)
        target_spec = stft(target, stft_cfg, causal=True)
        pred_spec = model(noisy_spec)
        pred = istft(pred_spec, stft_cfg, noisy.shape[-1], causal=True)  # (B, N)
        return hybrid_loss(pred_spec, target_spec, pred, target, self.cfg.loss)

    def train_step(self, noisy: torch.Tensor, target: torch.Tensor) -> StepResult:
        """One optimizer step on (B, N) noisy and target waveforms (the batch of ``self.step``), and
        the schedule advanced."""
        self.model.train()
        terms = self.compute_loss(self.ddp, noisy.to(self.device), target.to(self.device))
        self.optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.average.update(self.model)
        self.step += 1
        return StepResult(
            terms.total.item(), terms.ri.item(), terms.mag.item(), terms.neg_log_sisnr.item(), grad_norm.item()
        )

    # ----- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything ``load_state_dict`` needs to continue exactly."""
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "config": to_dict(self.cfg),
            "step": self.step,
            "model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            "average": self.average.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "best_metric_name": self.cfg.best_metric,
            "val_fingerprint": self.val_set.fingerprint,
            "best_metric": self.best_metric,
            "best_step": self.best_step,
            "wall_seconds": self.wall_seconds,
            "init_sha256": self.init_sha256,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict``.

        Raises:
            ResumeError: the state is not a training state or was made for another model shape.
        """
        if state.get("format") != STATE_FORMAT or state.get("version") != STATE_VERSION:
            raise ResumeError(f"not an rtenhance training state (format {state.get('format')!r})")
        try:
            saved_model = from_dict(ModelConfig, state["config"].get("model"), "model.")
        except ConfigError as exc:
            raise ResumeError(f"training state has a bad model config: {exc}") from None
        if saved_model != self.cfg.model:
            raise ResumeError(f"the checkpoint's model {to_dict(saved_model)} differs from the config's {to_dict(self.cfg.model)}")
        self.model.load_state_dict(state["model"])
        # states written before the weight average existed start the average at the current weights
        self.average.load_state_dict(state.get("average", state["model"]))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])
        same_selection = state.get("best_metric_name") == self.cfg.best_metric
        if same_selection and state.get("val_fingerprint") == self.val_set.fingerprint:
            self.best_metric = float(state["best_metric"])
            self.best_step = int(state["best_step"])
        else:  # another selection metric or validation set: the next validation starts afresh
            self.best_metric, self.best_step = -math.inf, -1
        self.wall_seconds = float(state["wall_seconds"])
        saved_init = state["config"].get("init_from", "")
        if saved_init:  # a fine-tuning run keeps the record of where it started
            self.cfg = replace(self.cfg, init_from=saved_init)
            self.init_sha256 = str(state.get("init_sha256", ""))

    def save(self) -> Path:
        """Write ``last.pt`` atomically; returns its path."""
        path = self.run_dir / LAST
        atomic_torch_save(self.state_dict(), path)
        return path

    def resume(self, path: Path | None = None) -> None:
        """Continue from ``path`` (default: this run's ``last.pt``).

        Raises:
            ResumeError: no such file, or not a usable training state.
        """
        path = path or self.run_dir / LAST
        if not path.is_file():
            raise ResumeError(f"{path}: no checkpoint to resume from (start without --resume)")
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))

    # ----- validation and logging -----------------------------------------------------------------
    def validate(self) -> dict[str, float]:
        """Metrics of the weight average on the fixed validation set (plus the raw weights' loss as
        ``raw_loss``); updates ``best.pt`` when ``best_metric`` improved."""
        metrics = validate(self.average.model, self.val_set, self.compute_loss, self.cfg.val_pesq)
        metrics["raw_loss"] = validate(self.model, self.val_set, self.compute_loss, with_pesq=False)["loss"]
        metrics["neg_loss"] = -metrics["loss"]
        value = metrics.get(self.cfg.best_metric, -math.inf)
        if value > self.best_metric:
            self.best_metric = value
            self.best_step = self.step
            meta: dict[str, Any] = {"step": self.step, "wall_seconds": round(self.wall_seconds, 1), "val": metrics}
            if self.cfg.init_from:
                meta["init_from"] = {"path": self.cfg.init_from, "sha256": self.init_sha256}
            save_checkpoint(self.average.model, self.run_dir / BEST, meta=meta)
        return metrics

    def _log(self, line: str) -> None:
        if not self.dist.is_main:
            return
        log.info(line)
        with open(self.run_dir / LOG, "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")

    # ----- the loop -------------------------------------------------------------------------------
    def run(self, max_steps: int | None = None, progress: bool = True, stop: Callable[[], bool] | None = None) -> None:
        """Train until ``max_steps`` (default ``cfg.max_steps``) or until ``stop()`` returns True.

        A checkpoint is written every ``checkpoint_every`` steps and at the end (by rank 0; under
        ``torchrun`` all processes stop at the same step when ``stop()`` is True on any of them).
        """
        from tqdm import tqdm

        cfg = self.cfg
        main = self.dist.is_main
        end = cfg.max_steps if max_steps is None else max_steps
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        params = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        self._log(
            f"start step={self.step} device={self.device} threads={torch.get_num_threads()} batch={cfg.batch_size}"
            f" segment_s={cfg.data.segment_seconds} trainable_params={params} world_size={self.dist.world_size}"
            + (f" init_from={cfg.init_from} sha256={self.init_sha256[:12]}" if cfg.init_from else "")
        )
        window: list[StepResult] = []
        window_seconds = 0.0
        bar = tqdm(total=end, initial=self.step, disable=not (progress and main), mininterval=PROGRESS_INTERVAL_S, unit="step")
        batches = self._batches(end)
        try:
            while self.step < end and not self.dist.any(bool(stop and stop())):
                t0 = time.monotonic()
                result = self.train_step(*next(batches))
                window_seconds += time.monotonic() - t0
                window.append(result)
                bar.update(1)
                bar.set_postfix(loss=f"{result.loss:.3f}", lr=f"{self.scheduler.get_last_lr()[0]:.2e}", refresh=False)
                if self.step % cfg.log_every == 0:
                    self._log_window(window, window_seconds)
                    window, window_seconds = [], 0.0
                if main and self.step % cfg.val_every == 0:
                    t_val = time.monotonic()
                    metrics = self.validate()
                    self._log(
                        f"val step={self.step} "
                        + " ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k != "neg_loss")
                        + f" best_{cfg.best_metric}={self.best_metric:.4f}@{self.best_step}"
                        + f" val_s={time.monotonic() - t_val:.1f}"
                    )
                self.wall_seconds += time.monotonic() - t0
                if main and self.step % cfg.checkpoint_every == 0:
                    self.save()
        finally:
            bar.close()
        if main:
            self.save()
        self._log(f"stop step={self.step} wall_s={self.wall_seconds:.0f}")

    def _batches(self, end: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of steps ``self.step`` to ``end - 1``, made ahead by ``data.workers`` processes
        (none: made here, one at a time)."""
        workers = self.cfg.data.workers
        loader = torch.utils.data.DataLoader(
            self.batches,
            batch_size=None,
            sampler=range(self.step, end),
            num_workers=workers,
            prefetch_factor=PREFETCH_BATCHES if workers else None,
            multiprocessing_context="fork" if workers else None,
            pin_memory=self.device.type == "cuda",
        )
        return iter(loader)

    def _log_window(self, window: list[StepResult], seconds: float) -> None:
        n = len(window)
        mean = lambda attr: sum(getattr(r, attr) for r in window) / n  # noqa: E731
        audio_s = n * self.cfg.batch_size * self.cfg.data.segment_seconds
        self._log(
            f"train step={self.step} loss={mean('loss'):.4f} ri={mean('ri'):.4f} mag={mean('mag'):.4f}"
            f" neg_log_sisnr={mean('neg_log_sisnr'):.4f} grad_norm={mean('grad_norm'):.2f}"
            f" lr={self.scheduler.get_last_lr()[0]:.2e} steps_per_s={n / seconds:.3f}"
            f" audio_s_per_s={audio_s / seconds:.1f}"
        )
