"""Rewrite the bundled torch-free weights from the bundled checkpoint and record their digest.

    python scripts/refresh_runtime_weights.py

Converts rtenhance/weights/gtcrn_default.pt (the file named by ``file`` in manifest.json) to
rtenhance/weights/gtcrn_default.npz and sets ``runtime_file`` and ``runtime_sha256`` in the manifest. Run it
after the checkpoint changes without ``scripts/bundle_weights.py``, or after a change to the native step's
plan (``PLAN_VERSION``); ``tests/weights/test_npz_format.py`` fails until then. Needs PyTorch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rtenhance.weights import MANIFEST, WEIGHTS_DIR, file_sha256  # noqa: E402
from rtenhance.weights.convert import convert_checkpoint  # noqa: E402

RUNTIME_FILE = "gtcrn_default.npz"


def main() -> int:
    manifest = json.loads(MANIFEST.read_text())
    target = WEIGHTS_DIR / RUNTIME_FILE
    convert_checkpoint(WEIGHTS_DIR / manifest["file"], target)
    manifest.update(runtime_file=RUNTIME_FILE, runtime_sha256=file_sha256(target))
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {target} (sha256 {manifest['runtime_sha256'][:12]}...) and updated {MANIFEST}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
