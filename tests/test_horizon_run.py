"""Horizon labels through the whole sequence, on a log with enough horizon churners, with the datasets kept
outside the run directory (``spark_dir``).

Apart from tests/test_sequence.py: it needs no earlier run, so it can run on the other pytest-xdist worker.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from test_sequence import CI, manifest_of

from sparkify_utils import artifacts, paths
from sparkify_utils.runtime.runner import run
from sparkify_utils.synth.generate import generate_log

pytestmark = pytest.mark.slow

#: A generated log whose default 21-day horizon holds enough churners (14) for params/ci.yaml's 3-fold CV
#: (the 100-user CI log has about 6), and whose 63 days leave room for the backtest's three cutoffs, each
#: trained one horizon earlier.
HORIZON_USERS, HORIZON_SEED, HORIZON_DAYS = 160, 3, 21


def horizon_churners(log: Path, horizon_days: int, users: set[str]) -> set[str]:
    """Users of ``users`` whose first cancellation falls in the default horizon, computed from the raw log."""
    events = pd.read_json(log, lines=True, dtype={"userId": str})
    events = events[events["userId"] != ""]
    day = 86_400_000
    log_end = (int(events["ts"].max()) // day + 1) * day  # the midnight after the last event
    cutoff = log_end - horizon_days * day
    cancelled = events[events["page"] == "Cancellation Confirmation"].groupby("userId")["ts"].min()
    return set(cancelled[(cancelled >= cutoff) & (cancelled < log_end)].index) & users


def test_horizon_labels_through_the_models_with_datasets_outside_the_run(tmp_path):
    """Horizon mode end to end on a log with enough horizon churners for the CV, and spark_dir elsewhere."""
    log = paths.data_dir() / "sparkify_horizon.json"
    generate_log(log, users=HORIZON_USERS, seed=HORIZON_SEED, force=True)
    spark_dir = tmp_path / "spark"
    # Not the dashboard: it reads what 01-03 wrote, whatever the label mode.
    steps = artifacts.STEPS[:3]
    run_dir = run(
        CI,
        overrides=[
            f"input_path={log.name}",
            "label_mode=horizon",
            f"horizon_days={HORIZON_DAYS}",
            f"spark_dir={spark_dir}",
        ],
        only=steps,
        echo=lambda _: None,
    )
    manifest = manifest_of(run_dir)
    assert manifest["status"] == "ok" and manifest["spark_dir"] == str(spark_dir / run_dir.name)
    # Datasets live under spark_dir only; the driver's files in the run directory.
    for artifact in artifacts.expected(steps):
        home, elsewhere = (
            (spark_dir / run_dir.name, run_dir) if artifact.store == "spark" else (run_dir, spark_dir / run_dir.name)
        )
        assert (home / artifact.name).exists() and not (elsewhere / artifact.name).exists(), artifact.name
    features = pd.read_parquet(spark_dir / run_dir.name / artifacts.FEATURE_TABLE.name)
    churners = set(features.loc[features["churn"] == 1, "userId"])
    assert churners == horizon_churners(log, HORIZON_DAYS, set(features["userId"]))
    assert len(churners) >= 10, "too few horizon churners for a 3-fold comparison: use a bigger log"
    summary = json.loads((run_dir / artifacts.FEATURES_SUMMARY.name).read_text())
    assert summary["label_mode"] == "horizon" and summary["churners"] == len(churners)
    metrics = json.loads((run_dir / artifacts.MODEL_METRICS.name).read_text())
    held_out = pd.read_csv(run_dir / artifacts.PREDICTIONS.name, dtype={"userId": str})
    assert set(held_out["userId"]) <= set(features["userId"])
    assert metrics["split"]["train_churners"] + metrics["split"]["test_churners"] == len(churners)
    assert metrics["chosen_model"] in metrics["models"]
    # The backtest judges the same horizon label, out of time: three cutoffs, each with its own churners.
    backtest = json.loads((run_dir / artifacts.BACKTEST.name).read_text())
    assert len(backtest["cutoffs"]) == 3 and backtest["overall"]["churners"] > 0
