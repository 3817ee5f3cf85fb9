"""``rtenhance eval``: metrics, table and JSON on a few dev files; bundled weights beat the noisy input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from rtenhance.evaluate import METRIC_KEYS, evaluate_condition, format_table, load_pairs
from rtenhance.metrics import si_sdr
from rtenhance.weights import MANIFEST, bundled_weights
from tests.conftest import REPO, need_shared

RATE = 16000
EVAL_TIMEOUT_S = 600
MANIFEST_TOLERANCE = 2e-3  # manifest.json rounds to 4 decimals; PESQ differs in the last digits across CPUs
MIN_GAIN = {"pesq_wb": 0.30, "stoi": 0.01, "si_sdr": 4.0}  # bundled weights vs noisy input on dev/


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "rtenhance", "eval", *args],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=EVAL_TIMEOUT_S,
    )


def test_si_sdr_is_scale_invariant_and_ranks_noise():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(RATE)
    noise = rng.standard_normal(RATE)
    assert si_sdr(3.0 * ref, ref) > 60.0
    assert abs(si_sdr(ref + 0.1 * noise, ref) - si_sdr(5.0 * (ref + 0.1 * noise), ref)) < 1e-9
    assert abs(si_sdr(ref + 0.1 * noise, ref) - 20.0) < 0.5


def test_eval_cli_json_on_three_dev_files(tmp_path):
    dev = need_shared("data", "dev")
    weights = need_shared("reference", "gtcrn_dns3.tar")
    out = tmp_path / "eval.json"
    proc = _cli(
        "--clean", str(dev / "clean"), "--noisy", str(dev / "noisy"), "--weights", str(weights),
        "--limit", "3", "--no-dnsmos", "--json", str(out),
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert set(result) == {"noisy", "gtcrn_dns3"}
    for summary in result.values():
        assert set(METRIC_KEYS) | {"n", "groups"} == set(summary)
        assert summary["n"] == 3
        assert all(summary[k] is not None for k in ("pesq_wb", "stoi", "si_sdr"))
        assert summary["dnsmos_ovrl"] is None
        assert "snr_db=0" in summary["groups"]
    assert "gtcrn_dns3 [snr_db=0]" in proc.stdout

    only_model = _cli(
        "--clean", str(dev / "clean"), "--noisy", str(dev / "noisy"), "--weights", str(weights),
        "--limit", "1", "--no-dnsmos", "--no-noisy", "--json", str(out),
    )
    assert only_model.returncode == 0, only_model.stderr
    assert set(json.loads(out.read_text())) == {"gtcrn_dns3"}


@pytest.mark.slow
def test_eval_cli_streaming_dnsmos_and_plots(tmp_path):
    dev = need_shared("data", "dev")
    weights = need_shared("reference", "gtcrn_dns3.tar")
    out, plots = tmp_path / "eval.json", tmp_path / "plots"
    proc = _cli(
        "--clean", str(dev / "clean"), "--noisy", str(dev / "noisy"), "--weights", str(weights),
        "--limit", "2", "--streaming", "--json", str(out), "--plot", str(plots),
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    for summary in result.values():
        assert all(1.0 <= summary[k] <= 5.0 for k in ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"))
    assert len(list(plots.glob("*.png"))) == 2


def test_eval_cli_rejects_missing_folder(tmp_path):
    proc = _cli("--clean", str(tmp_path / "nope"), "--noisy", str(tmp_path), "--weights", str(tmp_path / "w.pt"))
    assert proc.returncode == 2
    assert "no such" in proc.stderr


def test_table_has_one_row_per_condition_and_group():
    dev = need_shared("data", "dev")
    pairs = load_pairs(dev / "clean", dev / "noisy", limit=2)
    result = evaluate_condition(pairs, lambda x: x, None)
    table = format_table({"noisy": result})
    assert table.splitlines()[0].split()[:4] == ["condition", "pesq_wb", "stoi", "si_sdr"]
    assert sum(line.startswith("noisy") for line in table.splitlines()) == 1 + len(result["groups"])


@pytest.mark.skipif(not MANIFEST.is_file(), reason="no bundled weights yet (rtenhance/weights/manifest.json)")
def test_bundled_weights_beat_noisy_on_dev(tmp_path):
    """``rtenhance eval`` on all of dev/ with the bundled weights (about 30 s): the acceptance margins."""
    dev = need_shared("data", "dev")
    assert bundled_weights() is not None
    out = tmp_path / "dev.json"
    proc = _cli("--clean", str(dev / "clean"), "--noisy", str(dev / "noisy"), "--no-dnsmos", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    noisy, enhanced = result["noisy"], result["default"]
    assert noisy["n"] == enhanced["n"] == len(load_pairs(dev / "clean", dev / "noisy"))
    for key, gain in MIN_GAIN.items():
        assert enhanced[key] >= noisy[key] + gain, (key, noisy[key], enhanced[key])
    recorded = json.loads(MANIFEST.read_text())["dev"]  # the manifest states what a fresh eval measures
    for key in ("pesq_wb", "stoi", "si_sdr"):
        assert enhanced[key] == pytest.approx(recorded[key], abs=MANIFEST_TOLERANCE), key


@pytest.mark.skipif(not MANIFEST.is_file(), reason="no bundled weights yet (rtenhance/weights/manifest.json)")
def test_bundled_weights_are_selectable_by_name():
    from rtenhance.weights import DEFAULT_NAME, bundled_candidates, resolve_model

    default, name = resolve_model(None)
    assert name == DEFAULT_NAME
    for candidate in bundled_candidates():
        model, name = resolve_model(candidate)
        assert name == candidate
        if candidate == DEFAULT_NAME:
            for key, value in default.tensors.items():
                assert np.array_equal(model.tensors[key], value), key
