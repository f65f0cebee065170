"""The fuzzer of bench/fuzz.py at CI size: the real server, as a board runs it, must survive it.

50,000 frames (valid and mutated, pipelined, FIN and RST closes at random points) against a server
subprocess: no death, no hang, most frames reaching the request handler (so that the fuzzing is not
only of the framing code), and no memory growth beyond twice the largest payload. About a minute
on a 2-core machine; `make fuzz` runs the same with 100,000 frames.
"""

import importlib.util
import sys

import pytest
from conftest import REPO


def load_fuzz():
    """bench/ is not a package: load bench/fuzz.py by path (registered, for its dataclasses)."""
    spec = importlib.util.spec_from_file_location("edge_ai_fuzz", REPO / "bench" / "fuzz.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_server_survives_50000_fuzzed_frames():
    fuzz = load_fuzz()
    result = fuzz.run_fuzz(frames=50_000, seed=1, time_limit=150, max_deaths=3, log=None)
    report = fuzz.format_report(result)
    assert result["deaths"] == 0, report
    assert result["hangs"] == 0, report
    assert result["frames"] >= 50_000, report
    assert result["connections"].get("rst", 0) > 100, report  # abrupt closes were part of it
    assert result["close_points"].get("between_process_oks", 0) > 0, report
    assert result["handler_share"] >= fuzz.MIN_HANDLER_SHARE, report
    assert result["rss"]["growth_bytes"] < fuzz.RSS_GROWTH_FACTOR * result["rss"]["largest_payload_bytes"], report
    assert result["rss"]["largest_payload_bytes"] >= fuzz.MAX_PAYLOAD // 2, report  # the bound was put to the test
