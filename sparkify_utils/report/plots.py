"""Plotly figure builders (plain ``go.Figure``) shared by the notebooks and the dashboard: the style every
figure shares, the EDA and retention figures (:mod:`sparkify_utils.report.model_plots` has the model and
decision figures).

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


def layout(fig: go.Figure, title: str, x: str, y: str, **kwargs: object) -> go.Figure:
    """The project's figure style: title, axis titles and template (``kwargs`` go to ``update_layout``)."""
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
    return layout(fig, f"Users by churn group (churn rate {rate:.1%})", "", "users")


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
    fig = layout(fig, f"Free vs paid users by churn group<br><sup>{subtitle}</sup>", "", "share of the group's users")
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
    fig = layout(fig, f"Page visits per 100 songs ({what} over users)", "visits per 100 songs", "")
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
    fig = layout(fig, title, "", axis_title, showlegend=False)
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
    fig = layout(fig, "Daily activity", "day (UTC)", "active users")
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
    fig = layout(fig, "Activity by hour of day", "hour (UTC)", "share of the group's events")
    return fig.update_layout(yaxis_tickformat=".1%", xaxis={"dtick": 2})


def weekday_figure(patterns: pd.DataFrame) -> go.Figure:
    """Share of each churn group's events per weekday (UTC), from ``explore.time_patterns``."""
    fig = go.Figure()
    for churn, group in _shares(patterns, "weekday").groupby("churn"):
        group = group.set_index("weekday").reindex(list(WEEKDAYS))
        fig.add_bar(
            x=list(WEEKDAYS.values()), y=group["share"], name=CHURN_NAMES[churn], marker_color=CHURN_COLORS[churn]
        )
    fig = layout(fig, "Activity by weekday", "", "share of the group's events")
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
    return layout(fig, "Churn events per day", "day (UTC)", "cancellations")


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
    return layout(fig, "Days from first seen to churn", "days", "churners")


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
            fillcolor=transparent(color),
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
    fig = layout(fig, title, "days since first seen", "share not cancelled")
    return fig.update_layout(yaxis={"tickformat": ".0%", "range": [0, 1.02]})


def transparent(hex_color: str, alpha: float = 0.15) -> str:
    """``#rrggbb`` as an ``rgba()`` colour with opacity ``alpha`` (confidence bands)."""
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
    fig = layout(fig, "Churn over time", "week (Monday, UTC)", "cancellations")
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
