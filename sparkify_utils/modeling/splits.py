"""User-level splits: the held-out test users, stratified folds, and each user's role in every fit."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sparkify_utils.modeling.table import FINAL


def stratified_folds(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold number (0..k-1) of each row: classes shuffled separately, then dealt out in turn."""
    rng = np.random.default_rng(seed)
    folds = np.empty(len(y), dtype=int)
    order = np.concatenate([rng.permutation(np.flatnonzero(y == cls)) for cls in np.unique(y)])
    folds[order] = (np.arange(len(order)) + rng.integers(k)) % k
    return folds


def split_users(y: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """Boolean held-out mask: ``test_fraction`` of each class (at least one user), seeded."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), dtype=bool)
    for cls in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == cls))
        test[members[: max(1, round(len(members) * test_fraction))]] = True
    return test


def user_roles(
    y: np.ndarray, test_fraction: float, cv_folds: int, cv_repeats: int, tuning_folds: int, seed: int
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """One column per split giving each user's role in it: fit, valid, test or '' (not used).

    Columns are named ``__tune<t>``, ``__cv<repeat>_<fold>`` and ``__final`` (the held-out split).
    """
    held_out = split_users(y, test_fraction, seed)
    train = np.flatnonzero(~held_out)
    roles: dict[str, np.ndarray] = {}
    tune = stratified_folds(y[train], tuning_folds, seed + 1)
    for t in range(tuning_folds):
        roles[f"__tune{t}"] = np.full(len(y), "", dtype=object)
        roles[f"__tune{t}"][train] = np.where(tune == t, "valid", "fit")
    for r in range(cv_repeats):
        folds = stratified_folds(y[train], cv_folds, seed + 100 + r)
        for f in range(cv_folds):
            role = np.where(folds == f, "test", np.where(folds == (f + 1) % cv_folds, "valid", "fit"))
            roles[f"__cv{r}_{f}"] = np.full(len(y), "", dtype=object)
            roles[f"__cv{r}_{f}"][train] = role
    roles[FINAL] = np.where(held_out, "test", "fit").astype(object)
    groups = {
        "tuning": [f"__tune{t}" for t in range(tuning_folds)],
        "cv": [f"__cv{r}_{f}" for r in range(cv_repeats) for f in range(cv_folds)],
    }
    return pd.DataFrame(roles), groups


def class_weights(y: np.ndarray) -> tuple[float, float]:
    """Instance weights (stayed, churned) that give both classes the same total weight."""
    n, n_pos = len(y), float(np.sum(y))
    return n / (2 * (n - n_pos)), n / (2 * n_pos)
