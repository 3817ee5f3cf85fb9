"""Runtime configuration: documented defaults, lookup order, clear errors, what SIGHUP may change."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace

import pytest
import yaml

from rtenhance import runtime_config
from rtenhance.config import ConfigError, from_dict
from rtenhance.runtime_config import (
    DEFAULT_CONFIG_FILE, RuntimeConfig, load_runtime_config, reloaded, restart_only_changes,
)
from tests.conftest import REPO

DOCUMENTED = REPO / "config" / "rtenhance.yaml"


def test_documented_file_is_the_builtin_defaults_and_every_key_is_commented():
    text = DOCUMENTED.read_text()
    assert from_dict(RuntimeConfig, yaml.safe_load(text)) == RuntimeConfig()
    assert DEFAULT_CONFIG_FILE.read_text() == text  # shipped with the package
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("  ") and not line.lstrip().startswith("#") and ":" in line:
            assert lines[i - 1].lstrip().startswith("#"), f"undocumented key: {line.strip()}"


@pytest.fixture
def places(tmp_path, monkeypatch):
    xdg = tmp_path / "xdg"
    etc = tmp_path / "etc.yaml"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    monkeypatch.setattr(runtime_config, "ETC_CONFIG", etc)
    (xdg / "rtenhance").mkdir(parents=True)
    return xdg / "rtenhance" / "config.yaml", etc


def test_lookup_order(places, tmp_path):
    user, etc = places
    assert load_runtime_config() == (RuntimeConfig(), None)
    etc.write_text("latency: {target_ms: 70}\n")
    assert load_runtime_config()[0].latency.target_ms == 70 and load_runtime_config()[1] == etc
    user.write_text("latency: {target_ms: 80}\n")
    assert load_runtime_config()[0].latency.target_ms == 80
    explicit = tmp_path / "mine.yaml"
    explicit.write_text("latency: {target_ms: 90}\n")
    cfg, source = load_runtime_config(str(explicit), ["stats.interval_s=1"])
    assert (cfg.latency.target_ms, cfg.stats.interval_s, source) == (90, 1.0, explicit)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["audio.colour=blue"], "audio.colour: unknown key; allowed keys: input, output"),
        (["latency.target_ms=5"], "latency.target_ms: 5.0 is not allowed; expected 0 (as low as the timing allows) or 10..2000 ms"),
        (["enhance.bypass=maybe"], "enhance.bypass: 'maybe' is not allowed; expected true or false"),
        (["engine.threads=0"], "engine.threads: 0 is not allowed"),
        (["engine.cpus=[-1]"], "engine.cpus: [-1] is not allowed; expected CPU indices"),
        (["nonsense"], "expected key=value"),
    ],
)
def test_bad_values_name_key_value_and_allowed(places, overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_runtime_config(None, overrides)


def test_missing_explicit_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_runtime_config(str(tmp_path / "absent.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("latency:\n  target_ms: [60\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_runtime_config(str(bad))


def test_reload_takes_runtime_keys_and_names_the_rest():
    old = RuntimeConfig()
    new = replace(old, enhance=replace(old.enhance, attenuation_limit_db=12.0),
                  audio=replace(old.audio, input="pulse:x"), stats=replace(old.stats, interval_s=2.0))
    assert restart_only_changes(old, new) == ["audio.input"]
    merged = reloaded(old, new)
    assert merged.enhance.attenuation_limit_db == 12.0 and merged.stats.interval_s == 2.0
    assert merged.audio == old.audio


def test_exponent_numbers_are_numbers_and_range_checked(places):
    with pytest.raises(ConfigError, match=re.escape("latency.target_ms: 1000000000.0 is not allowed; expected 0 (as low as the timing allows) or 10..2000")):
        load_runtime_config(None, ["latency.target_ms=1e9"])
    assert load_runtime_config(None, ["latency.target_ms=1.5e2"])[0].latency.target_ms == 150.0


def test_binary_duplicate_and_bomb_files_name_the_file(tmp_path):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"latency:\n  target_ms: 60 # r\xe9glage\n\x00\xff")
    with pytest.raises(ConfigError, match=re.escape(f"{binary}: line 2: not UTF-8 text (byte 0xe9)")):
        load_runtime_config(str(binary))
    duplicate = tmp_path / "duplicate.yaml"
    duplicate.write_text("latency:\n  target_ms: 60\nlatency:\n  target_ms: 80\n")
    with pytest.raises(ConfigError, match=re.escape(f"{duplicate}: line 3 invalid YAML (duplicate key 'latency')")):
        load_runtime_config(str(duplicate))
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (2 << 20) + "\n")
    with pytest.raises(ConfigError, match="too large"):
        load_runtime_config(str(big))
    bomb = tmp_path / "bomb.yaml"
    levels = [f"&l0 [{', '.join(['lol'] * 9)}]"] + [f"&l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    bomb.write_text("latency:\n  target_ms: [" + ", ".join(levels) + "]\n")
    # In a subprocess with 2 GiB of data and 60 s: the unbounded loader took 9.5 GB and 68 s here.
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_DATA, (2 << 30, 2 << 30))\n"
        "from rtenhance.runtime_config import load_runtime_config\n"
        "from rtenhance.config import ConfigError\n"
        "try:\n"
        "    load_runtime_config(sys.argv[1])\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(bomb)], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr[-500:]
    assert "aliases" in done.stdout and str(bomb) in done.stdout and len(done.stdout) < 400
