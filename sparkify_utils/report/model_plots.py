"""Plotly figures of the features and models: importance, univariate AUCs, correlations, CV scores,
PR/ROC curves, confusion, and the decision figures (reliability, gains, campaign profit, hazard ratios,
backtest). Same conventions as :mod:`sparkify_utils.report.plots`, whose helpers they use.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from sparkify_utils.report.plots import CHURN_COLORS, CHURN_NAMES, layout, transparent


def importance_figure(importance: pd.DataFrame, title: str = "Feature importance", top: int = 15) -> go.Figure:
    """Horizontal bars of the ``top`` features by importance (table: feature, importance)."""
    shown = importance.nlargest(top, "importance").iloc[::-1]
    fig = go.Figure(
        go.Bar(
            x=shown["importance"],
            y=shown["feature"],
            orientation="h",
            marker_color="#4C78A8",
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )
    )
    return layout(fig, f"{title} (top {len(shown)})", "importance", "", height=max(350, 28 * len(shown) + 120))


# --- feature figures (inputs computed by sparkify_utils.features.univariate) ------------------------------------


def auc_figure(aucs: pd.DataFrame, top: int = 20) -> go.Figure:
    """Bars of the univariate ROC-AUC of the ``top`` most separating features (table of features.univariate_auc)."""
    shown = aucs.nlargest(top, "separation").iloc[::-1]
    colors = [CHURN_COLORS[1] if auc > 0.5 else CHURN_COLORS[0] for auc in shown["auc"]]
    fig = go.Figure(
        go.Bar(
            x=shown["auc"] - 0.5,
            y=shown["feature"],
            base=0.5,
            orientation="h",
            marker_color=colors,
            customdata=shown["auc"],
            hovertemplate="%{y}: AUC %{customdata:.3f}<extra></extra>",
        )
    )
    fig = layout(
        fig,
        "Univariate ROC-AUC (0.5 = no signal; red: higher for churners)",
        "ROC-AUC",
        "",
        height=max(350, 24 * len(shown) + 120),
    )
    return fig.update_layout(xaxis={"range": [0, 1]})


def correlation_figure(corr: pd.DataFrame, title: str = "Feature correlation (Spearman)") -> go.Figure:
    """Heatmap of a square correlation matrix (values in -1..1)."""
    fig = go.Figure(
        go.Heatmap(
            z=corr.to_numpy(),
            x=list(corr.columns),
            y=list(corr.index),
            zmin=-1,
            zmax=1,
            colorscale="RdBu",
            reversescale=True,
            hovertemplate="%{y} vs %{x}: %{z:.2f}<extra></extra>",
        )
    )
    size = max(500, 18 * len(corr) + 200)
    return layout(fig, title, "", "", height=size, width=size + 100, yaxis={"autorange": "reversed"})


# --- model comparison figures (inputs computed by sparkify_utils.modeling) ----------------------


def cv_scores_figure(scores: pd.DataFrame) -> go.Figure:
    """Grouped bars of each model's mean CV score with ±1 sd error bars (table: model, metric, mean, sd)."""
    fig = go.Figure()
    for metric, group in scores.groupby("metric", sort=False):
        fig.add_bar(
            x=group["model"],
            y=group["mean"],
            name=metric,
            error_y={"type": "data", "array": group["sd"], "visible": True},
            customdata=group["sd"],
            hovertemplate="%{x}: %{y:.3f} ± %{customdata:.3f}<extra>" + metric + "</extra>",
        )
    fig = layout(fig, "Repeated cross-validation on training users (mean ± sd over folds)", "", "score")
    return fig.update_layout(barmode="group", yaxis={"range": [0, 1.05]})


def pr_curves_figure(curves: pd.DataFrame, prevalence: float) -> go.Figure:
    """Precision-recall curves, one per model (table: model, recall, precision), and the chance level."""
    fig = go.Figure()
    for model, curve in curves.groupby("model", sort=False):
        fig.add_scatter(
            x=curve["recall"],
            y=curve["precision"],
            mode="lines",
            name=model,
            line_shape="vh",
            hovertemplate="recall %{x:.2f}, precision %{y:.2f}<extra>" + model + "</extra>",
        )
    fig.add_hline(y=prevalence, line_dash="dot", line_color="#999999", annotation_text="chance (churn rate)")
    fig = layout(fig, "Precision-recall on held-out users", "recall (churners found)", "precision")
    return fig.update_layout(xaxis={"range": [0, 1.02]}, yaxis={"range": [0, 1.05]})


def roc_curves_figure(curves: pd.DataFrame) -> go.Figure:
    """ROC curves, one per model (table: model, fpr, tpr), and the chance diagonal."""
    fig = go.Figure()
    for model, curve in curves.groupby("model", sort=False):
        fig.add_scatter(
            x=curve["fpr"],
            y=curve["tpr"],
            mode="lines",
            name=model,
            hovertemplate="FPR %{x:.2f}, TPR %{y:.2f}<extra>" + model + "</extra>",
        )
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#999999"}, name="chance")
    fig = layout(fig, "ROC on held-out users", "false positive rate", "true positive rate")
    return fig.update_layout(xaxis={"range": [0, 1]}, yaxis={"range": [0, 1.02]}, width=600, height=520)


def confusion_figure(counts: dict[str, int], title: str) -> go.Figure:
    """2x2 confusion matrix (counts: tp, fp, fn, tn) with the churn class first."""
    z = [[counts["tp"], counts["fn"]], [counts["fp"], counts["tn"]]]
    names = [CHURN_NAMES[1], CHURN_NAMES[0]]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[f"predicted {n}" for n in names],
            y=[f"actual {n}" for n in names],
            text=z,
            texttemplate="%{text}",
            colorscale="Blues",
            showscale=False,
            hovertemplate="%{y}, %{x}: %{z} users<extra></extra>",
        )
    )
    return layout(fig, title, "", "", width=480, height=400, yaxis={"autorange": "reversed"})


# --- decision figures (inputs computed by sparkify_utils.modeling.decisions) ----------------------


def reliability_figure(
    curves: pd.DataFrame, labels: dict[str, str] | None = None, title: str = "Reliability on held-out users"
) -> go.Figure:
    """Observed churn rate against mean predicted probability per bin (table: model, scale, predicted, observed,
    users), one line per model and scale (calibrated dashed), and the diagonal of perfect calibration."""
    labels = labels or {}
    fig = go.Figure()
    fig.add_scatter(
        x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#999999"}, name="perfectly calibrated"
    )
    for (model, scale), curve in curves.groupby(["model", "scale"], sort=False):
        name = f"{labels.get(model, model)} ({scale})"
        fig.add_scatter(
            x=curve["predicted"],
            y=curve["observed"],
            mode="lines+markers",
            name=name,
            line={"dash": "dash" if scale == "calibrated" else "solid"},
            customdata=curve["users"],
            hovertemplate="predicted %{x:.2f}, observed %{y:.2f} (%{customdata} users)<extra>" + name + "</extra>",
        )
    fig = layout(fig, title, "mean predicted churn probability", "observed churn rate")
    return fig.update_layout(xaxis={"range": [0, 1]}, yaxis={"range": [0, 1.02]})


def gains_figure(
    gains: pd.DataFrame, labels: dict[str, str] | None = None, shares: tuple[float, ...] = (0.05, 0.10, 0.20)
) -> go.Figure:
    """Cumulative gains: share of churners reached against share of users contacted, riskiest first (table:
    model, share_contacted, share_of_churners), the random line, and the lift table's shares marked."""
    labels = labels or {}
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#999999"}, name="random")
    for model, curve in gains.groupby("model", sort=False):
        name = labels.get(model, model)
        fig.add_scatter(
            x=curve["share_contacted"],
            y=curve["share_of_churners"],
            mode="lines",
            name=name,
            hovertemplate="top %{x:.0%} contacted: %{y:.0%} of churners<extra>" + name + "</extra>",
        )
    for share in shares:
        fig.add_vline(x=share, line_dash="dot", line_color="#cccccc")
    fig = layout(
        fig,
        "Cumulative gains on held-out users",
        "share of users contacted (riskiest first)",
        "share of churners reached",
    )
    return fig.update_layout(
        xaxis={"range": [0, 1], "tickformat": ".0%"}, yaxis={"range": [0, 1.02], "tickformat": ".0%"}
    )


def profit_figure(curve: pd.DataFrame, best: dict, title: str = "Campaign profit by users contacted") -> go.Figure:
    """Expected (and, with labels, realised) profit of contacting the k riskiest users (table: k, threshold,
    expected_profit[, realised_profit]), with the profit-optimal k marked."""
    fig = go.Figure()
    fig.add_scatter(
        x=curve["k"],
        y=curve["expected_profit"],
        mode="lines",
        name="expected (calibrated p)",
        customdata=curve["threshold"],
        line_color="#4C78A8",
        hovertemplate="top %{x}: %{y:.1f} (p ≥ %{customdata:.3f})<extra>expected</extra>",
    )
    if "realised_profit" in curve:
        fig.add_scatter(
            x=curve["k"],
            y=curve["realised_profit"],
            mode="lines",
            name="realised (who churned)",
            line_color=CHURN_COLORS[1],
            hovertemplate="top %{x}: %{y:.1f}<extra>realised</extra>",
        )
    fig.add_vline(
        x=best["k"],
        line_dash="dash",
        line_color="#333333",
        annotation_text=f"best k = {best['k']}: {best['profit']:.1f}",
    )
    fig.add_hline(y=0, line_color="#999999", line_width=1)
    return layout(fig, title, "users contacted (riskiest first)", "profit")


def hazard_figure(ratios: pd.DataFrame, top: int = 15) -> go.Figure:
    """Forest plot of Cox hazard ratios per standardised feature with 95 % intervals (the ``top`` by p-value)."""
    shown = ratios.nsmallest(top, "p_value").iloc[::-1]
    fig = go.Figure(
        go.Scatter(
            x=shown["hazard_ratio"],
            y=shown["covariate"],
            mode="markers",
            marker_color=CHURN_COLORS[1],
            error_x={
                "type": "data",
                "symmetric": False,
                "array": shown["upper_95"] - shown["hazard_ratio"],
                "arrayminus": shown["hazard_ratio"] - shown["lower_95"],
            },
            customdata=shown["p_value"],
            hovertemplate="%{y}: HR %{x:.2f} (p = %{customdata:.3g})<extra></extra>",
        )
    )
    fig.add_vline(x=1, line_dash="dot", line_color="#999999")
    fig = layout(
        fig,
        f"Cox hazard ratios per sd (top {len(shown)} by p-value, 95 % intervals)",
        "hazard ratio (> 1: cancels sooner)",
        "",
        height=max(350, 26 * len(shown) + 120),
    )
    return fig.update_layout(xaxis={"type": "log"})


def backtest_figure(cutoffs: pd.DataFrame, cross_validation: dict) -> go.Figure:
    """Churn-class F1 and PR-AUC of the out-of-time backtest per test cutoff (table: test_cutoff, f1, pr_auc,
    test_churners), with the random-split CV mean ± sd of each as a band."""
    fig = go.Figure()
    colors = {"f1": "#4C78A8", "pr_auc": "#E45756"}
    for metric, label in (("f1", "churn-class F1"), ("pr_auc", "PR-AUC")):
        color = colors[metric]
        mean, sd = cross_validation.get(f"{metric}_mean"), cross_validation.get(f"{metric}_sd")
        if mean is not None:
            fig.add_hrect(y0=mean - (sd or 0), y1=mean + (sd or 0), fillcolor=transparent(color), line_width=0)
            fig.add_hline(y=mean, line_dash="dot", line_color=color)
        fig.add_scatter(
            x=cutoffs["test_cutoff"],
            y=cutoffs[metric],
            mode="lines+markers",
            name=f"{label} out of time",
            line_color=color,
            customdata=cutoffs["test_churners"],
            hovertemplate="cutoff %{x}: %{y:.3f} (%{customdata} churners)<extra>" + label + "</extra>",
        )
    title = "Out-of-time backtest by test cutoff (dotted: random-split CV mean ± sd)"
    return layout(fig, title, "test cutoff", "score").update_layout(yaxis={"range": [0, 1.02]})
