"""Plotly figure builders (plain ``go.Figure``) shared by the notebooks and the dashboard.

Each builder takes a small pandas table produced in Spark and returns a figure; none computes over
events. Churn groups have one name and colour everywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from sparkify_utils.data.schema import CANCEL_PAGES, SONG_PAGE

#: Display name and colour of the churn groups (0 = stayed, 1 = churned).
CHURN_NAMES = {0: "stayed", 1: "churned"}
CHURN_COLORS = {0: "#4C78A8", 1: "#E45756"}
LEVEL_COLORS = {"free": "#9ecae9", "paid": "#3366cc", "unknown": "#bbbbbb"}
WEEKDAYS = {2: "Mon", 3: "Tue", 4: "Wed", 5: "Thu", 6: "Fri", 7: "Sat", 1: "Sun"}
TEMPLATE = "plotly_white"


def _layout(fig: go.Figure, title: str, x: str, y: str, **kwargs: object) -> go.Figure:
    fig.update_layout(
        title=title,
        xaxis_title=x,
        yaxis_title=y,
        template=TEMPLATE,
        legend_title_text="",
        margin={"t": 60, "l": 60, "r": 30, "b": 50},
        **kwargs,
    )
    return fig


def churn_figure(counts: pd.DataFrame) -> go.Figure:
    """Bar chart of users per churn group, labelled with counts and shares (from ``explore.churn_counts``)."""
    fig = go.Figure(
        go.Bar(
            x=[CHURN_NAMES[c] for c in counts["churn"]],
            y=counts["users"],
            marker_color=[CHURN_COLORS[c] for c in counts["churn"]],
            text=[f"{n:,} ({s:.1%})" for n, s in zip(counts["users"], counts["share"], strict=True)],
            textposition="outside",
            hovertemplate="%{x}: %{y:,} users<extra></extra>",
        )
    )
    rate = counts.loc[counts["churn"] == 1, "share"].iloc[0]
    return _layout(fig, f"Users by churn group (churn rate {rate:.1%})", "", "users")


def level_figure(table: pd.DataFrame, test: dict) -> go.Figure:
    """Share of free and paid users (level at their last event) within each churn group, with the chi-square result."""
    shares = table / table.sum(axis=0).replace(0, float("nan"))
    fig = go.Figure()
    for level in table.index:
        fig.add_bar(
            x=[CHURN_NAMES[c] for c in table.columns],
            y=shares.loc[level],
            name=level,
            marker_color=LEVEL_COLORS.get(level, "#999999"),
            customdata=table.loc[level].to_numpy(),
            hovertemplate=f"{level}: " + "%{y:.1%} (%{customdata:,} users)<extra></extra>",
        )
    if test["p_value"] is None:
        subtitle = f"chi-square: {test['note']}"
    else:
        subtitle = f"chi-square = {test['statistic']:.2f}, p = {test['p_value']:.3g}"
    fig = _layout(fig, f"Free vs paid users by churn group<br><sup>{subtitle}</sup>", "", "share of the group's users")
    return fig.update_layout(barmode="stack", yaxis_tickformat=".0%")


def page_rates_figure(pages: pd.DataFrame, stat: str = "mean_per_100_songs") -> go.Figure:
    """Per-user page visits per 100 songs by churn group (from ``explore.page_churn``), without
    NextSong (always 100) and the cancellation pages (they define the label)."""
    shown = pages[~pages["page"].isin((SONG_PAGE, *CANCEL_PAGES))]
    order = shown.groupby("page")[stat].max().sort_values().index.tolist()
    fig = go.Figure()
    for churn, group in shown.groupby("churn"):
        group = group.set_index("page").reindex(order)
        fig.add_bar(
            y=order,
            x=group[stat],
            orientation="h",
            name=CHURN_NAMES[churn],
            marker_color=CHURN_COLORS[churn],
            hovertemplate="%{y}: %{x:.2f} per 100 songs<extra>" + CHURN_NAMES[churn] + "</extra>",
        )
    what = "mean" if stat.startswith("mean") else "median"
    fig = _layout(fig, f"Page visits per 100 songs ({what} over users)", "visits per 100 songs", "")
    return fig.update_layout(barmode="group", height=max(400, 40 * len(order)))


def box_figure(per_user: pd.DataFrame, column: str, title: str, axis_title: str, log: bool = False) -> go.Figure:
    """Distribution of one per-user column by churn group: box with every user as a point."""
    fig = go.Figure()
    for churn, group in per_user.groupby("churn"):
        fig.add_box(
            y=group[column],
            name=CHURN_NAMES[churn],
            marker_color=CHURN_COLORS[churn],
            boxpoints="all",
            jitter=0.4,
            pointpos=0,
            boxmean=True,
            text=group["userId"],
            hovertemplate="user %{text}: %{y:,.1f}<extra></extra>",
        )
    fig = _layout(fig, title, "", axis_title, showlegend=False)
    return fig.update_yaxes(type="log") if log else fig


def daily_activity_figure(daily: pd.DataFrame) -> go.Figure:
    """Daily active logged-in users (all and churners) as lines, and events per day as bars (right axis)."""
    fig = go.Figure()
    fig.add_bar(
        x=daily["event_date"],
        y=daily["events"],
        name="events",
        marker_color="#dddddd",
        yaxis="y2",
        hovertemplate="%{x}: %{y:,} events<extra></extra>",
    )
    fig.add_scatter(
        x=daily["event_date"], y=daily["active_users"], name="active users", mode="lines", line_color=CHURN_COLORS[0]
    )
    fig.add_scatter(
        x=daily["event_date"],
        y=daily["active_churners"],
        name="active users who churn",
        mode="lines",
        line_color=CHURN_COLORS[1],
    )
    fig = _layout(fig, "Daily activity", "day (UTC)", "active users")
    return fig.update_layout(
        yaxis={"rangemode": "tozero"},
        yaxis2={"title": "events", "overlaying": "y", "side": "right", "showgrid": False, "rangemode": "tozero"},
        legend={"orientation": "h", "y": -0.2},
    )


def _shares(patterns: pd.DataFrame, by: str) -> pd.DataFrame:
    """Events per ``by`` as a share of each churn group's events, so groups of any size compare."""
    table = patterns.groupby(["churn", by], as_index=False)["events"].sum()
    table["share"] = table["events"] / table.groupby("churn")["events"].transform("sum")
    return table


def hour_figure(patterns: pd.DataFrame) -> go.Figure:
    """Share of each churn group's events per hour of day (UTC), from ``explore.time_patterns``."""
    fig = go.Figure()
    for churn, group in _shares(patterns, "hour").groupby("churn"):
        fig.add_scatter(
            x=group["hour"],
            y=group["share"],
            mode="lines+markers",
            name=CHURN_NAMES[churn],
            line_color=CHURN_COLORS[churn],
        )
    fig = _layout(fig, "Activity by hour of day", "hour (UTC)", "share of the group's events")
    return fig.update_layout(yaxis_tickformat=".1%", xaxis={"dtick": 2})


def weekday_figure(patterns: pd.DataFrame) -> go.Figure:
    """Share of each churn group's events per weekday (UTC), from ``explore.time_patterns``."""
    fig = go.Figure()
    for churn, group in _shares(patterns, "weekday").groupby("churn"):
        group = group.set_index("weekday").reindex(list(WEEKDAYS))
        fig.add_bar(
            x=list(WEEKDAYS.values()), y=group["share"], name=CHURN_NAMES[churn], marker_color=CHURN_COLORS[churn]
        )
    fig = _layout(fig, "Activity by weekday", "", "share of the group's events")
    return fig.update_layout(barmode="group", yaxis_tickformat=".0%")


def churn_per_day_figure(daily: pd.DataFrame) -> go.Figure:
    """Cancellations (churn events) per UTC day, from ``explore.daily_activity``."""
    fig = go.Figure(
        go.Bar(
            x=daily["event_date"],
            y=daily["cancellations"],
            marker_color=CHURN_COLORS[1],
            hovertemplate="%{x}: %{y} cancellations<extra></extra>",
        )
    )
    return _layout(fig, "Churn events per day", "day (UTC)", "cancellations")


def days_to_churn_figure(timing: pd.DataFrame) -> go.Figure:
    """Histogram of days from a churner's first event in the log to the cancellation."""
    fig = go.Figure(
        go.Histogram(
            x=timing["days_to_churn"],
            xbins={"size": 5},
            marker_color=CHURN_COLORS[1],
            hovertemplate="%{x} days: %{y} churners<extra></extra>",
        )
    )
    return _layout(fig, "Days from first seen to churn", "days", "churners")


def write_figures(figures: dict[str, go.Figure], directory: Path) -> list[Path]:
    """Write each figure as ``<name>.html`` (works offline: plotly.js is written once next to them)
    and ``<name>.json`` (for ``plotly.io.read_json``) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in figures.items():
        html, spec = directory / f"{name}.html", directory / f"{name}.json"
        fig.write_html(html, include_plotlyjs="directory", full_html=True)
        fig.write_json(spec)
        written += [html, spec]
    return written


# --- dashboard figures (inputs computed by sparkify_utils.report.analysis) -------------------------------


def retention_figure(
    curves: pd.DataFrame,
    test: dict | None = None,
    compared: str = "paid vs free",
    title: str = "Retention by days since first seen (95 % bands)",
) -> go.Figure:
    """Step curves of the share of users not yet cancelled by days since first seen, one per group, each with
    its 95 % confidence band; ``test`` (a log-rank test between the ``compared`` segments) goes in the subtitle."""
    palette = ["#333333", *CHURN_COLORS.values(), "#72B7B2", "#B279A2"]
    fig = go.Figure()
    for index, (group, curve) in enumerate(curves.groupby("group", sort=False)):
        color = palette[index % len(palette)]
        fig.add_scatter(
            x=curve["day"],
            y=curve["upper"],
            mode="lines",
            line_shape="hv",
            line_width=0,
            showlegend=False,
            hoverinfo="skip",
            legendgroup=group,
        )
        fig.add_scatter(
            x=curve["day"],
            y=curve["lower"],
            mode="lines",
            line_shape="hv",
            line_width=0,
            fill="tonexty",
            fillcolor=_transparent(color),
            showlegend=False,
            hoverinfo="skip",
            legendgroup=group,
        )
        fig.add_scatter(
            x=curve["day"],
            y=curve["survival"],
            mode="lines",
            line_shape="hv",
            name=group,
            legendgroup=group,
            line_color=color,
            customdata=curve["at_risk"],
            hovertemplate="day %{x:.1f}: %{y:.1%} not cancelled (%{customdata} at risk)<extra></extra>",
        )
    if test and test.get("p_value") is not None and np.isfinite(test["p_value"]):
        title += f"<br><sup>log-rank {compared}: chi-square {test['statistic']:.2f}, p = {test['p_value']:.3g}</sup>"
    fig = _layout(fig, title, "days since first seen", "share not cancelled")
    return fig.update_layout(yaxis={"tickformat": ".0%", "range": [0, 1.02]})


def _transparent(hex_color: str, alpha: float = 0.15) -> str:
    red, green, blue = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red}, {green}, {blue}, {alpha})"


def churn_by_week_figure(weekly: pd.DataFrame) -> go.Figure:
    """Cancellations per week (bars) and their share of that week's active users (line, right axis)."""
    fig = go.Figure()
    fig.add_bar(
        x=weekly["week"],
        y=weekly["cancellations"],
        name="cancellations",
        marker_color=CHURN_COLORS[1],
        customdata=weekly["active_users"],
        hovertemplate="week of %{x|%Y-%m-%d}: %{y} of %{customdata} active users<extra></extra>",
    )
    fig.add_scatter(
        x=weekly["week"],
        y=weekly["churn_rate"],
        name="weekly churn rate",
        yaxis="y2",
        mode="lines+markers",
        line_color="#333333",
        hovertemplate="week of %{x|%Y-%m-%d}: %{y:.1%}<extra></extra>",
    )
    fig = _layout(fig, "Churn over time", "week (Monday, UTC)", "cancellations")
    return fig.update_layout(
        yaxis2={
            "title": "share of active users",
            "overlaying": "y",
            "side": "right",
            "showgrid": False,
            "tickformat": ".0%",
            "rangemode": "tozero",
        },
        legend={"orientation": "h", "y": -0.2},
    )


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
    return _layout(fig, f"{title} (top {len(shown)})", "importance", "", height=max(350, 28 * len(shown) + 120))


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
    fig = _layout(
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
    return _layout(fig, title, "", "", height=size, width=size + 100, yaxis={"autorange": "reversed"})


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
    fig = _layout(fig, "Repeated cross-validation on training users (mean ± sd over folds)", "", "score")
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
    fig = _layout(fig, "Precision-recall on held-out users", "recall (churners found)", "precision")
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
    fig = _layout(fig, "ROC on held-out users", "false positive rate", "true positive rate")
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
    return _layout(fig, title, "", "", width=480, height=400, yaxis={"autorange": "reversed"})


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
    fig = _layout(fig, title, "mean predicted churn probability", "observed churn rate")
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
    fig = _layout(
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
    return _layout(fig, title, "users contacted (riskiest first)", "profit")


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
    fig = _layout(
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
            fig.add_hrect(y0=mean - (sd or 0), y1=mean + (sd or 0), fillcolor=_transparent(color), line_width=0)
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
    return _layout(fig, title, "test cutoff", "score").update_layout(yaxis={"range": [0, 1.02]})
