import json
import subprocess
import sys

import pytest

from tests.conftest import REPO


def test_profile_json_matches_published_figures() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "rtenhance", "profile", "--json"], capture_output=True, text=True, check=True, cwd=REPO
    )
    data = json.loads(out.stdout)
    assert abs(data["params_total"] - 48.2e3) / 48.2e3 <= 0.01
    assert abs(data["params_trainable"] - 23.67e3) / 23.67e3 <= 0.01
    assert abs(data["mmac_per_second"] - 33.0) / 33.0 <= 0.05
    assert data["mmac_per_second_dense"] > data["mmac_per_second"]
    assert sum(layer["mmac_per_second"] for layer in data["layers"]) == pytest.approx(data["mmac_per_second"])
