"""The decision evaluation of a comparison: can its probabilities be trusted, whom to contact, is a campaign
worth it, and when do users leave.

Given a finished :class:`~sparkify_utils.modeling.compare.Comparison`, on small per-user tables (pandas):

* **Calibration** (:mod:`~sparkify_utils.modeling.reliability`). Every model's calibrator (none, Platt or
  isotonic, whichever has the lowest cross-validated Brier) is fit on the out-of-fold predictions of the
  *training* users only (``Comparison.validation``); the held-out users judge it: Brier score, its skill over
  always predicting the training churn rate, reliability curves before and after. The chosen model's
  calibrated probabilities are the ones the at-risk list and the economics use.
* **Lift and gains** (:mod:`~sparkify_utils.modeling.lift`) of every model and baseline on the held-out users.
* **Campaign economics** (:mod:`~sparkify_utils.modeling.economics`): expected and realised profit of
  contacting the top k held-out users, and the expected profit of contacting the top k scored (active) users,
  from calibrated probabilities; the profit-optimal k and threshold.
* **Time to churn** (:mod:`~sparkify_utils.modeling.survival`), when the run has its users table (not for a
  user's own ``features_path`` table, which has no timestamps): Kaplan-Meier retention by level and by
  predicted risk with log-rank tests, and a Cox model on the per-user features (fit on the training users,
  concordance on the held-out users).

:func:`decisions_document` turns it all into ``decisions.json`` (every figure's data, so runs compare).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sparkify_utils.modeling.compare import Comparison
from sparkify_utils.modeling.economics import Economics, best_campaign, profit_curve
from sparkify_utils.modeling.lift import TOP_SHARES, gains_curve, lift_table
from sparkify_utils.modeling.reliability import (
    Calibrator,
    brier,
    brier_skill,
    choose_calibrator,
    reliability_curve,
)
from sparkify_utils.modeling.survival import SurvivalResult, survival_analysis
from sparkify_utils.modeling.table import BASELINE_NAMES, MODEL_NAMES

#: Reliability bins hold at least this many users on average (fewer bins on small held-out sets).
MIN_USERS_PER_BIN = 10
MAX_BINS = 10
#: Points kept of each curve stored in decisions.json (gains and profit curves have one point per user).
MAX_CURVE_POINTS = 201


@dataclass
class Decisions:
    """Everything the decision evaluation produced (see the module docstring)."""

    chosen: str
    economics: Economics
    calibrators: dict[str, Calibrator]
    calibration_methods: pd.DataFrame
    calibration: pd.DataFrame
    reliability: pd.DataFrame
    lift: pd.DataFrame
    gains: pd.DataFrame
    held_out: pd.DataFrame
    held_out_profit: pd.DataFrame
    survival: SurvivalResult | None
    survival_note: str
    base_rate: float
    #: The chosen model's decision threshold on its raw scores (tuned on out-of-fold F1).
    raw_threshold: float = 0.5
    campaign_curve: pd.DataFrame | None = None
    campaign: dict[str, Any] = field(default_factory=dict)

    @property
    def calibrator(self) -> Calibrator:
        """The chosen model's calibrator."""
        return self.calibrators[self.chosen]

    @property
    def threshold(self) -> float:
        """The chosen model's decision threshold on the calibrated scale."""
        return float(self.calibrator.transform([self.raw_threshold])[0])


def _bins(users: int) -> int:
    return int(max(2, min(MAX_BINS, users // MIN_USERS_PER_BIN)))


def calibrate(result: Comparison, seed: int) -> tuple[dict[str, Calibrator], pd.DataFrame]:
    """Each model's calibrator, chosen and fit on its out-of-fold training predictions, and the cross-validated
    Brier of every method per model (``model``, ``method``, ``brier_mean``, ``brier_sd``, ``chosen``)."""
    if result.validation is None:
        raise ValueError("The comparison holds no out-of-fold predictions to calibrate on; re-run compare_models.")
    calibrators, tables = {}, []
    for model in result.models:
        oof = result.validation[result.validation["model"] == model]
        calibrator, table = choose_calibrator(oof["label"], oof["probability"], seed, groups=oof["userId"])
        calibrators[model] = calibrator
        tables.append(table.assign(model=model, chosen=table["method"] == calibrator.method))
    return calibrators, pd.concat(tables, ignore_index=True)[["model", "method", "brier_mean", "brier_sd", "chosen"]]


def _held_out(result: Comparison, model: str) -> pd.DataFrame:
    return result.predictions[result.predictions["model"] == model]


def calibration_table(
    result: Comparison, calibrators: dict[str, Calibrator], base_rate: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per model on the held-out users: Brier and skill raw and calibrated; and the reliability curves
    (``model``, ``scale`` raw/calibrated, ``predicted``, ``observed``, ``users``)."""
    rows, curves = [], []
    for model, calibrator in calibrators.items():
        held = _held_out(result, model)
        y, raw = held["label"].to_numpy(float), held["probability"].to_numpy(float)
        calibrated = calibrator.transform(raw)
        rows.append(
            {
                "model": model,
                "label": MODEL_NAMES[model],
                "method": calibrator.method,
                "users": len(y),
                "brier_raw": brier(y, raw),
                "brier_calibrated": brier(y, calibrated),
                "skill_raw": brier_skill(y, raw, base_rate),
                "skill_calibrated": brier_skill(y, calibrated, base_rate),
            }
        )
        for scale, p in (("raw", raw), ("calibrated", calibrated)):
            curves.append(reliability_curve(y, p, _bins(len(y))).assign(model=model, scale=scale))
    return pd.DataFrame(rows), pd.concat(curves, ignore_index=True)


def lift_and_gains(result: Comparison) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Lift, capture and precision at the top 5/10/20 % of held-out users, and the gains curve, per model and
    baseline (ranked by their raw scores: calibration keeps the order)."""
    tables, curves = [], []
    for model, held in result.predictions.groupby("model", sort=False):
        tables.append(lift_table(held["label"], held["probability"], TOP_SHARES).assign(model=model))
        curves.append(gains_curve(held["label"], held["probability"]).assign(model=model))
    return pd.concat(tables, ignore_index=True), pd.concat(curves, ignore_index=True)


def honest_scores(result: Comparison, calibrator: Calibrator) -> pd.DataFrame:
    """A score for every user that no model saw in training: the chosen model's out-of-fold probability for
    the training users (first CV repeat), its held-out probability for the test users (``userId``, ``label``,
    ``probability`` calibrated, ``held_out``)."""
    chosen = result.validation[result.validation["model"] == result.chosen]
    oof = chosen[chosen["repeat"] == 0].assign(held_out=False)
    test = _held_out(result, result.chosen)[["userId", "label", "probability"]].assign(held_out=True)
    both = pd.concat([oof[["userId", "label", "probability", "held_out"]], test], ignore_index=True)
    return both.assign(probability=calibrator.transform(both["probability"]))


def evaluate(
    result: Comparison,
    econ: Economics,
    lifetimes: pd.DataFrame | None = None,
    seed: int = 42,
    no_survival_reason: str = "",
) -> Decisions:
    """The decision evaluation of ``result`` (see the module docstring); survival only with ``lifetimes``
    (the run's users table), otherwise ``no_survival_reason`` says why it is skipped."""
    base_rate = result.split["train_churners"] / result.split["train_users"]
    calibrators, methods = calibrate(result, seed)
    calibration, reliability = calibration_table(result, calibrators, base_rate)
    lift, gains = lift_and_gains(result)
    calibrator = calibrators[result.chosen]
    held = _held_out(result, result.chosen)
    held = pd.DataFrame(
        {
            "userId": held["userId"].to_numpy(),
            "label": held["label"].to_numpy(int),
            "score": held["probability"].to_numpy(float),
            "probability": calibrator.transform(held["probability"]),
        }
    )
    # Riskiest first; calibration can tie users (isotonic steps), the raw score orders them within a tie.
    held = held.sort_values(
        ["probability", "score", "userId"], ascending=[False, False, True], kind="mergesort", ignore_index=True
    )
    raw_threshold = result.thresholds[result.chosen]
    threshold = float(calibrator.transform([raw_threshold])[0])
    survival, note = None, no_survival_reason or "No users table given: time to churn not analysed."
    if lifetimes is not None and result.table is not None:
        scores = honest_scores(result, calibrator).set_index("userId")["probability"]
        held_out = set(held["userId"])
        survival = survival_analysis(result.spec, result.table, lifetimes, scores, held_out, threshold)
        note = survival.note
    return Decisions(
        chosen=result.chosen,
        economics=econ,
        calibrators=calibrators,
        calibration_methods=methods,
        calibration=calibration,
        reliability=reliability,
        lift=lift,
        gains=gains,
        held_out=held,
        held_out_profit=profit_curve(held["probability"], econ, held["label"]),
        survival=survival,
        survival_note=note,
        base_rate=base_rate,
        raw_threshold=raw_threshold,
    )


def plan_campaign(decisions: Decisions, probability: object) -> dict[str, Any]:
    """Expected profit of contacting the top k scored users (calibrated ``probability``): the curve goes into
    ``decisions.campaign_curve``, the profit-optimal k, threshold and profit into ``decisions.campaign``."""
    econ = decisions.economics
    curve = profit_curve(probability, econ)
    decisions.campaign_curve = curve
    best = best_campaign(curve) if len(curve) > 1 else {"k": 0, "threshold": float("inf"), "profit": 0.0}
    decisions.campaign = {**best, "users": len(curve) - 1, "break_even_probability": econ.break_even_probability}
    return decisions.campaign


def held_out_campaign(decisions: Decisions) -> dict[str, dict[str, float]]:
    """On the held-out users: the k that maximises expected profit and what it actually earned, and the
    k that would have earned most in hindsight."""
    curve = decisions.held_out_profit
    expected = best_campaign(curve)
    realised_at_expected = float(curve.loc[curve["k"] == expected["k"], "realised_profit"].iloc[0])
    return {
        "expected_best": {**expected, "realised_profit": realised_at_expected},
        "realised_best": best_campaign(curve, "realised_profit"),
    }


def summary_text(decisions: Decisions) -> str:
    """The decision evaluation in a few sentences (markdown)."""
    chosen = decisions.chosen
    row = decisions.calibration.set_index("model").loc[chosen]
    lift = decisions.lift[decisions.lift["model"] == chosen].set_index("share")
    held = held_out_campaign(decisions)
    econ = decisions.economics
    lines = [
        f"**Calibration** of {MODEL_NAMES[chosen]}: {row['method']} (chosen on out-of-fold training predictions); "
        f"held-out Brier {row['brier_raw']:.3f} raw → {row['brier_calibrated']:.3f} calibrated (skill over the "
        f"training churn rate {decisions.base_rate:.1%}: {row['skill_raw']:+.2f} → {row['skill_calibrated']:+.2f}).",
        f"**Lift** at the top 10 % of held-out users: {lift.at[0.1, 'lift']:.2f}× the base rate "
        f"({int(lift.at[0.1, 'churners_reached'])} churners among {int(lift.at[0.1, 'k'])} users, "
        f"{lift.at[0.1, 'capture']:.0%} of all churners).",
        f"**Campaign** (contact {econ.contact_cost:g}, churner value {econ.churner_value:g}, save share "
        f"{econ.save_rate:g}; contacting pays above p = {econ.break_even_probability:.3f}): on held-out users the "
        f"expected-profit-optimal k = {held['expected_best']['k']} would have earned "
        f"{held['expected_best']['realised_profit']:.1f} (expected {held['expected_best']['profit']:.1f}); in "
        f"hindsight the best k was {held['realised_best']['k']} ({held['realised_best']['profit']:.1f}).",
    ]
    if decisions.campaign:
        c = decisions.campaign
        if not c["users"]:
            lines.append("No users scored (no scoring table), so no campaign to plan on them.")
        elif c["k"]:
            lines.append(
                f"Among the {c['users']} scored users, contacting the top **{c['k']}** (calibrated "
                f"probability ≥ {c['threshold']:.3f}) maximises expected profit: **{c['profit']:.1f}**."
            )
        else:
            lines.append(
                f"None of the {c['users']} scored users is worth contacting: no calibrated probability "
                f"exceeds the break-even {econ.break_even_probability:.3f}."
            )
    if decisions.survival is not None:
        s = decisions.survival
        lines.append(
            f"**Time to churn**: Cox model concordance {s.concordance_test:.3f} on held-out users "
            f"({s.concordance_train:.3f} on training users); log-rank "
            + "; ".join(f"{k.replace('_', ' ')} p = {t['p_value']:.3g}" for k, t in s.tests.items())
            + "."
        )
    else:
        lines.append(decisions.survival_note)
    return "\n\n".join(lines)


def _thin(curve: pd.DataFrame, points: int = MAX_CURVE_POINTS) -> pd.DataFrame:
    """At most ``points`` evenly spaced rows (first and last kept) of a long curve, for the JSON record."""
    if len(curve) <= points:
        return curve
    return curve.iloc[np.unique(np.linspace(0, len(curve) - 1, points).round().astype(int))]


def _records(frame: pd.DataFrame | None) -> list[dict[str, Any]]:
    return [] if frame is None else frame.replace([np.inf, -np.inf], np.nan).to_dict("records")


def decisions_document(decisions: Decisions) -> dict[str, Any]:
    """The content of ``decisions.json``: every number and every figure's data of the decision evaluation."""
    econ = decisions.economics
    document: dict[str, Any] = {
        "chosen_model": decisions.chosen,
        "base_rate": decisions.base_rate,
        "calibration": {
            "method": decisions.calibrator.method,
            "threshold_raw": decisions.raw_threshold,
            "threshold": decisions.threshold,
            "note": "calibrators chosen (none, platt, isotonic) by 5-fold CV Brier on the out-of-fold predictions "
            "of the training users; judged on the held-out users",
            "models": _records(decisions.calibration),
            "methods": _records(decisions.calibration_methods),
            "reliability": _records(decisions.reliability),
        },
        "lift": {
            "shares": list(TOP_SHARES),
            "models": _records(decisions.lift),
            "gains": _records(pd.concat([_thin(g) for _, g in decisions.gains.groupby("model", sort=False)])),
            "labels": {m: MODEL_NAMES.get(m) or BASELINE_NAMES.get(m, m) for m in decisions.lift["model"].unique()},
        },
        "economics": {
            "parameters": {
                "contact_cost": econ.contact_cost,
                "churner_value": econ.churner_value,
                "save_rate": econ.save_rate,
            },
            "break_even_probability": econ.break_even_probability,
            "held_out": held_out_campaign(decisions),
            "held_out_curve": _records(_thin(decisions.held_out_profit)),
            "campaign": decisions.campaign,
            "campaign_curve": _records(None if decisions.campaign_curve is None else _thin(decisions.campaign_curve)),
        },
        "held_out_scores": _records(decisions.held_out),
        "survival": {"available": decisions.survival is not None, "note": decisions.survival_note},
        "summary": summary_text(decisions),
    }
    if decisions.survival is not None:
        s = decisions.survival
        document["survival"].update(
            {
                "users": s.users,
                "events": s.events,
                "logrank": s.tests,
                "curves": _records(s.curves),
                "cox": {
                    "concordance_train": s.concordance_train,
                    "concordance_test": s.concordance_test,
                    "covariates": s.covariates,
                    "hazard_ratios": _records(s.hazard_ratios),
                },
            }
        )
    return document
