"""Quality metrics of a classification run, computed with scikit-learn.

scikit-learn is imported inside the function so that importing `core` stays light on a board.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from edge_ai_lib.core.errors import MeasurementsError


def classification_quality(probabilities: np.ndarray, truth: np.ndarray,
                           class_names: Sequence[str], top_k: Sequence[int] = (1, 3, 5)) -> dict[str, Any]:
    """Accuracy, top-k, per-class precision/recall/F1 and the confusion matrix of one run.

    Per-class figures and the matrix are kept beside the accuracy because one accuracy hides which
    classes a compiled or quantized model got worse at.

    Parameters
    ----------
    probabilities : np.ndarray
        One score vector per sample, shape (samples, classes).
    truth : np.ndarray
        The true class index of each sample.
    class_names : Sequence[str]
        The dataset's classes, in index order.
    top_k : Sequence[int]
        The k of the top-k accuracies; those not below the class count are skipped (always 1).

    Returns
    -------
    dict[str, Any]
        The result's `quality` section, JSON-ready.

    Raises
    ------
    MeasurementsError
        The scores do not match the labels or the dataset's class count.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    probabilities = np.asarray(probabilities, dtype=np.float64)
    truth = np.asarray(truth).astype(np.int64).reshape(-1)
    if probabilities.ndim != 2 or probabilities.shape[0] != truth.shape[0]:
        raise MeasurementsError(
            f"predictions of shape {probabilities.shape} do not match {truth.shape[0]} labels: the model "
            "must return one score vector per sample"
        )
    labels = list(range(len(class_names)))
    if probabilities.shape[1] != len(labels):
        raise MeasurementsError(
            f"the model returns {probabilities.shape[1]} scores per sample but the dataset has "
            f"{len(labels)} classes: train the model for this dataset"
        )
    predictions = probabilities.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predictions, labels=labels, zero_division=0)
    # Top-k by rank of the true class's score (scikit-learn's top_k_accuracy_score refuses
    # two-class problems whose labels are not all present).
    ranked = np.argsort(-probabilities, axis=1, kind="stable")
    top = {str(k): float((ranked[:, :k] == truth[:, None]).any(axis=1).mean())
           for k in top_k if k < len(labels)}
    return {
        "accuracy": float(accuracy_score(truth, predictions)),
        "top_k_accuracy": top,
        "class_names": list(class_names),
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(support[i])}
            for i, name in enumerate(class_names)
        },
        "macro_f1": float(np.mean(f1)),
        "confusion_matrix": confusion_matrix(truth, predictions, labels=labels).tolist(),
        "sample_count": int(truth.size),
    }
