"""Agreement of a run's outputs with the same model's run on another board (an emulated board against the host).

A run on an emulated board (its result's `board.emulated` is true) proves that code built for that
architecture computes what the host computes: its raw outputs are set against those of the host's run of
the same model, compiler class and settings (its target aside), sample by sample. Its timings prove
nothing about the real chip and are marked as such (`EMULATED_NOTE`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_ai_lib.core.errors import MeasurementsError

EMULATED_NOTE = "emulated: timings are not arm hardware speed"
# Compiler settings that name where the code runs rather than what it computes.
TARGET_SETTINGS = frozenset({"architecture", "mcpu", "mattr", "compiled_model_path", "tuning_database"})


def is_emulated(document: dict[str, Any]) -> bool:
    """Whether the result's board said it was emulated (`emulated: true` in its settings)."""
    return bool((document.get("board") or {}).get("emulated"))


def output_agreement(reference: np.ndarray, outputs: np.ndarray, reference_predicted: list[int],
                     predicted: list[int]) -> dict[str, Any]:
    """Max absolute difference of the raw outputs and the share of samples whose top-1 class is the same.

    Both runs must hold the same samples in the same order; only the samples both measured (the shorter
    run's count) are compared. Quantized outputs (int8) are compared in their own units.
    """
    count = min(len(reference), len(outputs), len(reference_predicted), len(predicted))
    if count == 0:
        raise MeasurementsError("no sample to compare: one of the two runs measured none")
    first = np.asarray(reference[:count], dtype=np.float64).reshape(count, -1)
    second = np.asarray(outputs[:count], dtype=np.float64).reshape(count, -1)
    if first.shape != second.shape:
        raise MeasurementsError(f"the runs' outputs differ in shape ({first.shape[1:]} against {second.shape[1:]} per "
                                "sample): they are not runs of the same model")
    difference = np.abs(first - second)
    same = np.asarray(reference_predicted[:count]) == np.asarray(predicted[:count])
    return {"samples": int(count), "max_abs_error": float(difference.max()),
            "mean_abs_error": float(difference.mean()), "top1_agreement": float(same.mean()),
            "top1_disagreements": int((~same).sum()), "outputs_dtype": str(np.asarray(outputs).dtype)}


def _compiler_identity(document: dict[str, Any]) -> tuple:
    settings = (document.get("run") or {}).get("settings") or {}
    compiler = settings.get("compiler") or {}
    runtime = settings.get("runtime") or {}
    arguments = {k: v for k, v in (compiler.get("args") or {}).items() if k not in TARGET_SETTINGS}
    return compiler.get("class"), repr(sorted(arguments.items())), runtime.get("class")


def find_reference(document: dict[str, Any], candidates: list[tuple[Path, dict[str, Any]]]
                   ) -> tuple[Path, dict[str, Any]] | None:
    """The host run to compare an emulated run with: same model and dataset, same compiler class, settings
    (target aside) and runtime class, on a board that is not emulated; the same thread count when there is
    a choice. None when there is none."""
    run = document.get("run") or {}
    identity = _compiler_identity(document)
    dataset = (document.get("dataset") or {}).get("class")
    matches = [(path, other) for path, other in candidates
               if other.get("kind") != "failed_run" and not is_emulated(other)
               and (other.get("run") or {}).get("model") == run.get("model")
               and (other.get("dataset") or {}).get("class") == dataset
               and _compiler_identity(other) == identity]
    if not matches:
        return None
    matches.sort(key=lambda item: ((item[1].get("run") or {}).get("threads") != run.get("threads"),
                                   str((item[1].get("run") or {}).get("compiler")), str(item[0])))
    return matches[0]


def agreement_with_host(results: list[tuple[Path, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """For every emulated run among `results` (result path, document), its agreement with its host run.

    Keyed by the emulated result's path; each value names the reference run (`reference`: its model,
    compiler, board and threads) and holds `output_agreement`'s figures, or `error` when no host run was
    found or the outputs cannot be compared (the sentence says which and why).
    """
    from edge_ai_lib.core.results import read_outputs

    agreements: dict[str, dict[str, Any]] = {}
    for path, document in results:
        if document.get("kind") == "failed_run" or not is_emulated(document):
            continue
        entry: dict[str, Any] = {"note": EMULATED_NOTE}
        found = find_reference(document, results)
        if found is None:
            run = document.get("run") or {}
            entry["error"] = (f"no run of {run.get('model')} with compiler class "
                              f"{_compiler_identity(document)[0]} on a board that is not emulated: add one (e.g. the "
                              "same compiler with target host on the local board) to compare outputs")
            agreements[str(path)] = entry
            continue
        reference_path, reference = found
        reference_run = reference.get("run") or {}
        entry["reference"] = {key: reference_run.get(key) for key in ("model", "compiler", "board", "threads")}
        try:
            mine, theirs = document.get("outcomes") or {}, reference.get("outcomes") or {}
            count = min(len(mine.get("true_class", [])), len(theirs.get("true_class", [])))
            if mine.get("true_class", [])[:count] != theirs.get("true_class", [])[:count]:
                raise MeasurementsError("the two runs measured different samples (their true classes differ): run "
                                        "both on the same dataset split")
            entry.update(output_agreement(read_outputs(reference_path, reference), read_outputs(path, document),
                                          theirs.get("predicted_class", []), mine.get("predicted_class", [])))
        except MeasurementsError as error:
            entry["error"] = str(error)
        agreements[str(path)] = entry
    return agreements
