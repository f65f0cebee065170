"""The report's verdict: the fastest variant, or the variants indistinguishable from it."""

from pathlib import Path

from edge_ai_lib.report import Run, fastest_verdicts


def run(compiler: str, median: float, low: float, high: float, model: str = "m", board: str = "b") -> Run:
    document = {"performance": {"statistics": {"median": median, "median_ci95": [low, high]}}}
    return Run(model, compiler, board, Path(f"{model}/{compiler}/{board}.json"), document)


def test_clear_winner():
    verdicts = fastest_verdicts([run("slow", 2.0, 1.9, 2.1), run("fast", 1.0, 0.9, 1.1)])
    assert verdicts[("m", "b")] == {"fastest": "fast", "tied": [], "count": 2}


def test_overlapping_intervals_are_indistinguishable():
    verdicts = fastest_verdicts([run("a", 1.00, 0.90, 1.10), run("b", 1.05, 1.08, 1.20), run("c", 3.0, 2.9, 3.1)])
    assert verdicts[("m", "b")] == {"fastest": "a", "tied": ["b"], "count": 3}


def test_groups_are_per_model_and_board():
    verdicts = fastest_verdicts([run("x", 1.0, 0.9, 1.1, board="b1"), run("y", 2.0, 1.9, 2.1, board="b2")])
    assert verdicts[("m", "b1")]["count"] == 1 and verdicts[("m", "b2")]["fastest"] == "y"
