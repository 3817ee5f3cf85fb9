"""The streams benchmark and the serve load test run end to end (slow: they take real time)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_streams_benchmark_writes_its_json(tmp_path) -> None:
    out = tmp_path / "streams.json"
    subprocess.run([sys.executable, str(REPO / "bench" / "streams.py"), "--ticks", "20", "--counts", "1,8",
                    "--methods", "batched,enhancers,processes", "--json", str(out)], check=True, timeout=600,
                   capture_output=True)
    result = json.loads(out.read_text())
    assert set(result) == {"batched", "enhancers", "processes"}
    for figures in result.values():
        assert set(figures) == {"max_realtime_streams", "cpu_us_per_stream_hop"}
        assert figures["cpu_us_per_stream_hop"] > 0


@pytest.mark.slow
def test_serve_load_test_holds_its_clients() -> None:
    pytest.importorskip("websockets")
    sys.path.insert(0, str(REPO))
    from bench.serve_load import run_load_tests

    (run,) = run_load_tests([4], seconds=2.0, core=0, weights=None)
    assert run["held"] == 4
    assert run["received"] > 0 and run["server_hops"] is not None
