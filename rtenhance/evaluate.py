"""Objective evaluation of enhancement on paired clean/noisy folders: WB-PESQ, STOI, SI-SDR, DNSMOS.

Pairs are matched by file name. Where the clean folder's ``manifest.tsv`` has ``subset`` or ``snr_db``
columns, results are also grouped by them. Each condition (the noisy input, each model) is scored on the
same files; means are over files (PESQ over the files where it is defined).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import soundfile as sf

from rtenhance.dnsmos import Dnsmos
from rtenhance.metrics import METRIC_RATE, MetricError, pesq_wb, si_sdr, stoi

AUDIO_SUFFIXES = (".flac", ".wav")
GROUP_COLUMNS = ("subset", "snr_db")  # manifest columns results are grouped by
METRIC_KEYS = ("pesq_wb", "stoi", "si_sdr", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")
NOISY = "noisy"

Enhance = Callable[[np.ndarray], np.ndarray]  # (N,) float32 -> (N,) float32 at 16 kHz


class EvaluationError(ValueError):
    """The folders cannot be evaluated (missing, no common files, wrong sample rate)."""


@dataclass(frozen=True)
class Pair:
    """A clean reference and its noisy version, (N,) float32 at 16 kHz, plus manifest group labels."""

    name: str
    clean: np.ndarray
    noisy: np.ndarray
    groups: dict[str, str] = field(default_factory=dict)


def _read(path: Path) -> np.ndarray:
    samples, rate = sf.read(path, dtype="float32", always_2d=True)
    if rate != METRIC_RATE:
        raise EvaluationError(f"{path}: {rate} Hz; evaluation needs {METRIC_RATE} Hz files")
    return samples.mean(axis=1)


def _manifest_groups(folder: Path) -> dict[str, dict[str, str]]:
    manifest = folder / "manifest.tsv"
    if not manifest.is_file():
        return {}
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return {r["file"]: {c: r[c] for c in GROUP_COLUMNS if r.get(c) not in (None, "")} for r in rows if "file" in r}


def load_pairs(clean_dir: str | Path, noisy_dir: str | Path, limit: int | None = None) -> list[Pair]:
    """Read the files present in both folders (sorted by name), at most ``limit`` of them.

    Raises:
        EvaluationError: a folder is missing, the folders share no audio file, or a pair differs in length.
    """
    clean_dir, noisy_dir = Path(clean_dir), Path(noisy_dir)
    for folder in (clean_dir, noisy_dir):
        if not folder.is_dir():
            raise EvaluationError(f"{folder}: no such folder")
    names = sorted(
        p.name for p in clean_dir.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES and (noisy_dir / p.name).is_file()
    )
    if not names:
        raise EvaluationError(f"{clean_dir} and {noisy_dir} share no audio files (pairs are matched by name)")
    groups = _manifest_groups(clean_dir)
    pairs = []
    for name in names[:limit]:
        clean, noisy = _read(clean_dir / name), _read(noisy_dir / name)
        if clean.shape != noisy.shape:
            raise EvaluationError(f"{name}: clean has {clean.shape[0]} samples, noisy {noisy.shape[0]}")
        pairs.append(Pair(name, clean, noisy, groups.get(name, {})))
    return pairs


def score(estimate: np.ndarray, reference: np.ndarray, dnsmos: Dnsmos | None) -> dict[str, float]:
    """All metrics of one file; PESQ is NaN where it is undefined, DNSMOS keys absent without a model."""
    try:
        pesq = pesq_wb(estimate, reference)
    except MetricError:
        pesq = float("nan")
    out = {"pesq_wb": pesq, "stoi": stoi(estimate, reference), "si_sdr": si_sdr(estimate, reference)}
    if dnsmos is not None:
        mos = dnsmos(np.clip(estimate, -1.0, 1.0))
        out.update(dnsmos_sig=mos.sig, dnsmos_bak=mos.bak, dnsmos_ovrl=mos.ovrl)
    return out


def summarise(rows: list[dict[str, float]]) -> dict[str, float | int | None]:
    """Mean of each metric over files (NaNs skipped; None when no file has it) and ``n`` files."""
    out: dict[str, float | int | None] = {}
    for key in METRIC_KEYS:
        values = [r[key] for r in rows if key in r and not np.isnan(r[key])]
        out[key] = float(np.mean(values)) if values else None
    out["n"] = len(rows)
    return out


def evaluate_condition(
    pairs: list[Pair],
    enhance: Enhance | None,
    dnsmos: Dnsmos | None,
    progress: Callable[[Iterable[Pair]], Iterable[Pair]] = iter,
    keep: Callable[[Pair, np.ndarray], None] | None = None,
) -> dict[str, object]:
    """Score one condition over all pairs.

    Args:
        pairs: the files.
        enhance: the enhancement to score, or None to score the noisy input itself.
        dnsmos: a DNSMOS model, or None to skip DNSMOS.
        progress: wraps the iteration over pairs (for a progress bar).
        keep: called with each pair and its estimate (to plot or save it).

    Returns:
        The overall summary (``summarise``) plus ``"groups"``: {"column=value": summary} for the manifest
        columns that take more than one value over ``pairs``.
    """
    rows: list[dict[str, float]] = []
    by_group: dict[str, list[dict[str, float]]] = defaultdict(list)
    for pair in progress(pairs):
        estimate = pair.noisy if enhance is None else np.asarray(enhance(pair.noisy), dtype=np.float32)
        if keep is not None:
            keep(pair, estimate)
        row = score(estimate, pair.clean, dnsmos)
        rows.append(row)
        for column, value in pair.groups.items():
            by_group[f"{column}={value}"].append(row)
    result: dict[str, object] = dict(summarise(rows))
    splitting = {c for c in GROUP_COLUMNS if len({p.groups.get(c) for p in pairs}) > 1}  # columns that split files
    result["groups"] = {
        g: summarise(r)
        for g, r in sorted(by_group.items(), key=lambda kv: _group_order(kv[0]))
        if g.partition("=")[0] in splitting
    }
    return result


def _group_order(group: str) -> tuple[str, float, str]:
    column, _, value = group.partition("=")
    try:
        return column, float(value), ""
    except ValueError:
        return column, 0.0, value


def format_table(results: dict[str, dict[str, object]]) -> str:
    """A plain-text table: one row per condition (and per condition and group), one column per metric."""
    header = ["condition", *METRIC_KEYS, "n"]
    lines = [header]
    for name, summary in results.items():
        lines.append([name, *_cells(summary)])
    groups = sorted({g for s in results.values() for g in s.get("groups", {})}, key=_group_order)  # type: ignore[union-attr]
    for group in groups:
        for name, summary in results.items():
            sub = summary.get("groups", {}).get(group)  # type: ignore[union-attr]
            if sub is not None:
                lines.append([f"{name} [{group}]", *_cells(sub)])
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in lines)


def _cells(summary: dict[str, object]) -> list[str]:
    cells = []
    for key in METRIC_KEYS:
        value = summary.get(key)
        cells.append("-" if value is None else f"{value:.3f}" if key != "si_sdr" else f"{value:.2f}")
    cells.append(str(summary.get("n", 0)))
    return cells
