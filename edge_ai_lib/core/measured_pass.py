"""Warm up, then measure every sample of a split once: the benchmark loop, written once.

A host run (the framework itself) and a board run (over the protocol) time the same calls this way,
so their numbers compare: the cold first call and `warmup` more run on the split's first batch and are
kept apart; then each sample of the split (up to `max_samples`) is run exactly once, in order, so the
quality is computed on the whole split and on nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import numpy as np

from edge_ai_lib.core.timing import TimingRecord

if TYPE_CHECKING:
    from edge_ai_lib.core.dataset import Dataset

Prepared = TypeVar("Prepared")


@dataclass
class PassPosition:
    """Where a measured pass is, so that a caller can say which sample a failure interrupted.

    Attributes
    ----------
    warming_up : bool
        True until the cold and warm-up calls are done.
    measured : int
        Samples measured so far.
    total : int
        Samples the measured pass runs (known once the warm-up is done).
    """

    warming_up: bool = True
    measured: int = 0
    total: int = 0


@dataclass
class MeasuredPass:
    """What a measured pass returns.

    Attributes
    ----------
    timing : TimingRecord
        The times `run` reported: cold, warm-up and measured calls.
    outputs : list
        What `run` returned for each measured batch, in dataset order.
    labels : np.ndarray
        The true classes of the measured samples, in the same order.
    wall_s : float
        Wall-clock time of the measured pass, preparation and transfers included: the end-to-end
        throughput, beside the call-only one of `timing`.
    """

    timing: TimingRecord
    outputs: list[Any]
    labels: np.ndarray
    wall_s: float


def measure_split(dataset: Dataset, split: str, prepare: Callable[[np.ndarray], Prepared],
                  run: Callable[[Prepared], tuple[float, Any]], warmup: int, batch_size: int | None = None,
                  max_samples: int | None = None, progress: bool = True, description: str = "inference",
                  position: PassPosition | None = None) -> MeasuredPass:
    """Time `run` over a split: one cold call and `warmup` more on the first batch, then each sample once.

    Preparing a batch is kept out of `run` so that it is never timed, wherever the call runs.

    Parameters
    ----------
    dataset : Dataset
        The dataset whose split is run.
    split : str
        The split's name (e.g. "validation").
    prepare : Callable[[np.ndarray], Prepared]
        Dataset inputs of one batch to what `run` takes (framework tensors, a DATA payload).
    run : Callable[[Prepared], tuple[float, Any]]
        Runs one prepared batch; returns the seconds to record for it and its outputs.
    warmup : int
        Warm-up calls after the cold one, excluded from the statistics.
    batch_size : int | None
        Samples per call; the dataset's batch size when None.
    max_samples : int | None
        Measure only the split's first samples; all of them when None.
    progress : bool
        Show a progress bar of the measured pass.
    description : str
        The progress bar's label; the split's name is added.
    position : PassPosition | None
        Updated as the pass goes, for a caller that reports where a failure happened.
    """
    from tqdm import tqdm

    batch_size = batch_size or dataset.batch_size
    position = PassPosition() if position is None else position
    timing = TimingRecord(warmup_count=warmup, batch_size=batch_size)
    first_inputs, _ = next(iter(dataset.iter_batches(split, batch_size=batch_size)))
    prepared_first = prepare(first_inputs)
    position.warming_up = True
    while timing.in_warmup:
        timing.add(run(prepared_first)[0])

    split_size = dataset.split_size(split)
    position.warming_up, position.measured = False, 0
    position.total = min(split_size, max_samples or split_size)
    outputs, labels = [], []
    start = perf_counter()
    with tqdm(total=position.total, desc=f"{description} ({split})", unit="sample", disable=not progress,
              mininterval=0.5) as bar:
        for inputs, batch_labels in dataset.iter_batches(split, batch_size=batch_size, max_samples=max_samples):
            seconds, batch_outputs = run(prepare(inputs))
            timing.add(seconds)
            outputs.append(batch_outputs)
            labels.append(batch_labels)
            position.measured += len(batch_labels)
            bar.update(len(batch_labels))
    return MeasuredPass(timing, outputs, np.concatenate(labels), perf_counter() - start)
