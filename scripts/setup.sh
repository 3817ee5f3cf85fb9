#!/usr/bin/env bash
# Set up rtenhance on a fresh Debian/Ubuntu machine: system packages (when root), .venv, PyTorch CPU,
# and the package in editable mode with its dev extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(python3-venv python3-dev gcc libportaudio2 libasound2-plugins libpulse0 libsndfile1 pulseaudio pulseaudio-utils
              sox libsox-fmt-pulse espeak-ng systemd pipewire pipewire-pulse wireplumber dbus libpipewire-0.3-dev)
TORCH_SPEC="${RTENHANCE_TORCH:-torch==2.13.0}"
VENV="${VENV:-.venv}"

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing Debian packages; run:"
    echo "  sudo apt-get install -y ${missing[*]}"
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "setup: installing PyTorch CPU ($TORCH_SPEC)"
  # RTENHANCE_TORCH_INDEX may name PyTorch's CPU-only wheel index to avoid the large CUDA build.
  "$VENV/bin/python" -m pip install -q "$TORCH_SPEC" ${RTENHANCE_TORCH_INDEX:+--index-url "$RTENHANCE_TORCH_INDEX"}
fi
echo "setup: installing rtenhance (editable, with dev extras)"
"$VENV/bin/python" -m pip install -q -e ".[dev]"
echo "setup: done ($VENV)"
