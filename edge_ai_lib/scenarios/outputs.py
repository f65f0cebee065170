"""The tail every benchmark scenario shares: write the result and its plots, then tell the user."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from edge_ai_lib.plots import write_run_outputs


def finish_run(output_dir: Path, name: str, document: dict[str, Any], summary: str,
               arrays: Mapping[str, np.ndarray] | None = None) -> Path:
    """Write a run's plots, arrays and result JSON, then print its summary, its warnings and what was written.

    Printing follows writing so that a summary is only ever shown for a result that exists; the
    warnings go to standard error so that they are seen even when standard output goes to a log.

    Parameters
    ----------
    output_dir : Path
        The report directory.
    name : str
        The report name: the result is `output_dir/name.json`, the plots `output_dir/name-*.png`.
    document : dict[str, Any]
        The result document, checked against the schema before anything is written.
    summary : str
        The scenario's one-line summary of the run (quality and speed).
    arrays : Mapping[str, np.ndarray] | None
        Arrays written beside the result as `.npy` files, by file name (e.g. the raw outputs).

    Returns
    -------
    Path
        The result file.
    """
    path, plots = write_run_outputs(Path(output_dir), name, document, arrays)
    print(summary)
    for warning in document["performance"]["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    kept = f", {', '.join(arrays)}" if arrays else ""
    print(f"wrote {path}, {len(plots)} plots{kept}")
    return path
