"""The model step's outputs: ``metrics.json`` (every number of the comparison), ``decisions.json`` (the decision
evaluation), the CSVs and the saved models."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from sparkify_utils.artifacts import (
    AT_RISK,
    BACKTEST,
    DECISIONS,
    FEATURE_IMPORTANCE,
    MODEL_METRICS,
    PREDICTIONS,
    SAVED_MODELS,
)
from sparkify_utils.modeling.backtest_report import Backtest, backtest_document
from sparkify_utils.modeling.compare import Comparison, cv_summary, verdict
from sparkify_utils.modeling.decisions import Decisions, decisions_document
from sparkify_utils.modeling.explain import AtRiskList
from sparkify_utils.modeling.metrics import METRICS
from sparkify_utils.modeling.table import BASELINE_NAMES, MODEL_NAMES
from sparkify_utils.paths import RunPaths


def _clean(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(value) else float(value)
    return value


def metrics_document(result: Comparison, at_risk: AtRiskList | None = None) -> dict[str, Any]:
    """The content of ``metrics.json`` (see the module docstring for the protocol behind each number)."""
    summary = cv_summary(result.folds)
    test = result.test.set_index("model")
    models: dict[str, Any] = {}
    for name in summary.index:
        tuned = result.tuning.get(name, {})
        models[name] = {
            "kind": "baseline" if name in BASELINE_NAMES else "model",
            "label": MODEL_NAMES.get(name) or BASELINE_NAMES[name],
            "cv": {m: {"mean": summary.at[name, f"{m}_mean"], "sd": summary.at[name, f"{m}_sd"]} for m in METRICS},
            "test": test.loc[name].drop("threshold").to_dict(),
            "threshold": test.at[name, "threshold"],
            "params": tuned.get("params", {}),
            "tuning_grid": tuned.get("grid", []),
            "fit_seconds": result.fit_seconds.get(name),
        }
    models["rule"]["params"] = {
        "feature": result.rule.feature,
        "direction": "higher -> churn" if result.rule.direction > 0 else "lower -> churn",
        "note": result.rule.note,
    }
    folds = {name: {m: group[m].tolist() for m in METRICS} for name, group in result.folds.groupby("model", sort=False)}
    document = {
        "chosen_model": result.chosen,
        "selection": f"highest mean CV churn-class F1 (ties: PR-AUC) among the models ({', '.join(result.models)}), "
        "never a baseline",
        "backend": {
            "name": result.backend.name,
            "reason": result.backend_reason,
            "model_format": result.backend.model_format,
        },
        "verdict": verdict(result),
        "parameters": result.parameters,
        "split": result.split,
        "features": {
            "numeric": list(result.spec.numeric),
            "boolean": list(result.spec.boolean),
            "categorical": list(result.spec.categorical),
            "ignored": result.spec.ignored,
            "encoded": result.feature_names,
        },
        "models": models,
        "folds": folds,
        "timings": dict(result.timings),
    }
    if at_risk is not None:
        document["timings"]["scoring_s"] = at_risk.seconds
        document["scoring"] = {
            "source": at_risk.source,
            "users": len(at_risk.table),
            "at_risk": int(at_risk.table["at_risk"].sum()) if len(at_risk.table) else 0,
            "level_column": at_risk.level_column,
            "recency_column": at_risk.recency_column,
            "reasons": at_risk.reasons,
            "note": at_risk.note,
        }
    return _clean(document)


def save_artifacts(
    result: Comparison,
    paths: RunPaths,
    at_risk: AtRiskList | None = None,
    decisions: Decisions | None = None,
    backtest: Backtest | None = None,
) -> dict[str, str]:
    """Write the models (by the backend), predictions/importance/at-risk CSVs, ``metrics.json`` and, given the
    decision evaluation and the backtest, ``decisions.json`` and ``backtest.json`` (driver)."""
    written = {}
    backend = result.backend
    models_dir = paths.dataset(SAVED_MODELS) if backend.saves_with_spark else str(paths.driver_dataset(SAVED_MODELS))
    for name, model in result.models.items():
        written[f"model_{name}"] = backend.save(model, f"{models_dir}/{name}")
    tables = {PREDICTIONS: result.predictions, FEATURE_IMPORTANCE: result.importance}
    if at_risk is not None:
        tables[AT_RISK] = at_risk.table
    for artifact, table in tables.items():
        table.to_csv(paths.file(artifact), index=False)
        written[artifact.name] = str(paths.file(artifact))
    document = metrics_document(result, at_risk)
    document["saved"] = written
    paths.file(MODEL_METRICS).write_text(json.dumps(document, indent=2))
    written[MODEL_METRICS.name] = str(paths.file(MODEL_METRICS))
    if decisions is not None:
        paths.file(DECISIONS).write_text(json.dumps(_clean(decisions_document(decisions)), indent=1))
        written[DECISIONS.name] = str(paths.file(DECISIONS))
    if backtest is not None:
        paths.file(BACKTEST).write_text(json.dumps(_clean(backtest_document(backtest)), indent=1))
        written[BACKTEST.name] = str(paths.file(BACKTEST))
    return written
