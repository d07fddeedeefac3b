"""The churn dashboard's page: sections of cards, figures, tables and widgets built from one run.

Everything that computes lives in the package so it is testable without a browser; the dashboard
notebook only calls :func:`~sparkify_utils.report.run.open_run`, :func:`show_header` and
:func:`show_section`. Voila does not pass papermill parameters, so ``sparkify dashboard`` hands the
run to the kernel through the ``SPARKIFY_RUN_DIR`` variable (see :mod:`sparkify_utils.report.server`).
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pandas as pd
import plotly.graph_objects as go
from IPython.display import HTML, display

from sparkify_utils.artifacts import (
    AT_RISK,
    DATA_QUALITY,
    DECISIONS,
    EDA_SUMMARY,
    FEATURE_IMPORTANCE,
    LEVEL_CHURN,
    MODEL_METRICS,
    PAGE_CHURN,
    SONGS_PER_USER,
    USER_LIFETIMES,
)
from sparkify_utils.report import model_plots, plots
from sparkify_utils.report.analysis import (
    ALL_LEVELS,
    SHOWN_METRICS,
    chosen_importance,
    churn_by_week,
    filter_at_risk,
    level_table,
    model_scores,
    retention_curves,
)
from sparkify_utils.report.decision_views import backtest_section, campaign_section, gains_section, reliability_section
from sparkify_utils.report.formatting import fmt
from sparkify_utils.report.html import MAX_TABLE_ROWS, STYLE, csv_download_link, notice
from sparkify_utils.report.run import ArtifactError, MissingArtifact, Run, no_run_message

#: Where the at-risk slider starts when the run has no model threshold.
DEFAULT_THRESHOLD = 0.5


# --- sections -----------------------------------------------------------------------------------


def _card(key: str, label: str, value: Any, text: str) -> str:
    return (
        f'<div class="spk-card" data-metric="{key}" data-value="{html.escape(str(value))}">'
        f'<div class="spk-label">{html.escape(label)}</div><div class="spk-value">{html.escape(text)}</div></div>'
    )


def headline_cards(summary: dict[str, Any]) -> str:
    """The headline figures of ``eda_summary.json`` as HTML cards (raw value in ``data-value``)."""
    rate = summary["churn_rate"]
    period = f"{summary['first_event'][:10]} – {summary['last_event'][:10]}"
    cards = [
        _card("users", "Users", summary["users"], f"{summary['users']:,}"),
        _card("churners", "Churners", summary["churners"], f"{summary['churners']:,}"),
        _card("churn_rate", "Churn rate", rate, "n/a" if rate is None else f"{rate:.1%}"),
        _card("period", "Period (UTC)", period, f"{period} ({summary['days']} days)"),
        _card("events", "Events kept", summary["events"], f"{summary['events']:,}"),
        _card("songs", "Songs played", summary["songs"], f"{summary['songs']:,}"),
    ]
    return f'<div class="spk-cards">{"".join(cards)}</div>'


def quality_summary(quality: dict[str, Any]) -> str:
    """One line plus a small table from ``data_quality.json``: rows read, kept, and every bad-row reason."""
    read, kept = quality["rows_read"], quality["rows_kept"]
    bad = {
        reason: quality["rows_excluded"].get(reason, 0) + quality["rows_quarantined"].get(reason, 0)
        for reason in {**quality["rows_excluded"], **quality["rows_quarantined"]}
    }
    share = f" ({kept / read:.2%})" if read else ""
    line = (
        f"<p>{read:,} rows read from {quality['files_read']} file(s); {kept:,} kept{share}, of which "
        f"{quality['anonymous_rows']:,} logged-out/guest rows; bad-row policy "
        f"<code>{html.escape(quality['bad_row_policy'])}</code>.</p>"
    )
    rows = "".join(f"<tr><th>{html.escape(r)}</th><td>{n:,}</td></tr>" for r, n in bad.items())
    return line + f'<table class="spk-table spk-quality"><tr><th>bad rows</th><th>count</th></tr>{rows}</table>'


def _headline(run: Run) -> list[Any]:
    return [HTML(headline_cards(run.json(EDA_SUMMARY)))]


def _quality(run: Run) -> list[Any]:
    return [HTML(quality_summary(run.json(DATA_QUALITY)))]


def _level(run: Run) -> list[Any]:
    per_user = run.csv(LEVEL_CHURN)
    summary = run.json(EDA_SUMMARY)
    test = {"statistic": summary["chi2_statistic"], "p_value": summary["chi2_p_value"], "note": summary["chi2_note"]}
    return [plots.level_figure(level_table(per_user), test)]


def _pages(run: Run) -> list[Any]:
    pages = run.csv(PAGE_CHURN)
    return [plots.page_rates_figure(pages)]


def _songs(run: Run) -> list[Any]:
    per_user = run.csv(SONGS_PER_USER)
    return [plots.box_figure(per_user, "songs", "Songs played per user", "songs")]


def _lifetimes(run: Run) -> pd.DataFrame:
    return run.csv(USER_LIFETIMES)


def _over_time(run: Run) -> list[Any]:
    return [plots.churn_by_week_figure(churn_by_week(_lifetimes(run)))]


def _retention(run: Run) -> list[Any]:
    curves, test = retention_curves(_lifetimes(run), run.csv(LEVEL_CHURN))
    return [plots.retention_figure(curves, test)]


#: Metrics the model comparison shows (of the seven in metrics.json), with their display names.


def model_table(metrics: dict[str, Any]) -> str:
    """HTML table: each model's CV mean ± sd and held-out score per metric, the chosen model in bold."""
    head = "".join(f"<th>{label} (CV)</th><th>{label} (test)</th>" for label in SHOWN_METRICS.values())
    rows = []
    for model, entry in metrics["models"].items():
        cv, test = entry["cv"], entry["test"]
        cells = "".join(
            f"<td>{_score(cv[m]['mean'])} ± {_score(cv[m]['sd'])}</td><td>{_score(test.get(m))}</td>"
            for m in SHOWN_METRICS
        )
        style = ' style="font-weight: 600"' if model == metrics.get("chosen_model") else ""
        rows.append(f"<tr{style}><th>{html.escape(entry.get('label', model))}</th>{cells}</tr>")
    verdict = html.escape(metrics.get("verdict", "")).replace("\n", "<br>")
    return (
        f'<p class="spk-verdict">{verdict}</p><table class="spk-table spk-models"><tr><th>model</th>{head}</tr>'
        f"{''.join(rows)}</table>"
    )


def _score(value: float | None) -> str:
    return fmt(value, ".3f", "–")


def _models(run: Run) -> list[Any]:
    metrics = run.json(MODEL_METRICS)
    return [model_plots.cv_scores_figure(model_scores(metrics)), HTML(model_table(metrics))]


def _importance(run: Run) -> list[Any]:
    importance = run.csv(FEATURE_IMPORTANCE)
    label, rows = chosen_importance(importance, run.json(MODEL_METRICS))
    return [model_plots.importance_figure(rows, f"Feature importance: {label}")]


#: Headers of the at-risk table on the page (the CSV download keeps the file's own column names).
AT_RISK_HEADERS = {
    "userId": "user",
    "probability": "churn probability",
    "level": "level",
    "recency_days": "days since last activity",
    "top_features": "main reasons",
}


AT_RISK_FORMATS = {"churn probability": "{:.3f}".format, "days since last activity": "{:.1f}".format}


def at_risk_widget(table: pd.DataFrame, threshold: float = DEFAULT_THRESHOLD) -> widgets.VBox:
    """Threshold slider + level filter over the at-risk users, with the filtered table and a CSV link."""
    slider = widgets.FloatSlider(
        value=threshold,
        min=0.0,
        max=1.0,
        step=0.01,
        description="Probability threshold",
        readout_format=".3f",
        continuous_update=False,
        style={"description_width": "initial"},
        layout={"width": "420px"},
    )
    level = widgets.Dropdown(options=[ALL_LEVELS, *sorted(table["level"].dropna().unique())], description="Level")
    slider.add_class("spk-threshold")
    level.add_class("spk-level")
    summary, body = widgets.HTML(), widgets.HTML()
    # Optional columns the scoring table could not fill (e.g. no recency feature) are left out.
    headers = {
        c: h
        for c, h in AT_RISK_HEADERS.items()
        if c in ("userId", "probability") or (c in table.columns and table[c].notna().any())
    }

    def refresh(_: object = None) -> None:
        kept = filter_at_risk(table, slider.value, level.value)
        name = f"at_risk_users_p{slider.value:.2f}_{level.value}.csv"
        shown = f", the riskiest {MAX_TABLE_ROWS} shown" if len(kept) > MAX_TABLE_ROWS else ""
        summary.value = (
            f'<p class="spk-at-risk-count" data-rows="{len(kept)}">{len(kept):,} of {len(table):,} scored users '
            f"with churn probability &ge; {slider.value:.3f}{shown}. "
            f"{csv_download_link(kept, name, f'Download these {len(kept):,} users as CSV')}</p>"
        )
        page = kept.head(MAX_TABLE_ROWS)[list(headers)].rename(columns=headers)
        body.value = page.to_html(
            index=False, classes="spk-table spk-at-risk", border=0, na_rep="", formatters=AT_RISK_FORMATS
        )

    slider.observe(refresh, "value")
    level.observe(refresh, "value")
    refresh()
    return widgets.VBox([widgets.HBox([slider, level]), summary, body])


def model_threshold(run: Run) -> float:
    """The chosen model's decision threshold on the scale of the at-risk list's probabilities: calibrated, from
    ``decisions.json``; from ``metrics.json`` for a run without calibration; 0.5 when neither file is there."""
    try:
        return float(run.json(DECISIONS)["calibration"]["threshold"])
    except MissingArtifact:
        pass
    try:
        metrics = run.json(MODEL_METRICS)
    except MissingArtifact:
        return DEFAULT_THRESHOLD
    return float(metrics["models"][metrics["chosen_model"]]["threshold"])


def _at_risk(run: Run) -> list[Any]:
    return [at_risk_widget(run.csv(AT_RISK), model_threshold(run))]


@dataclass(frozen=True)
class Section:
    """One block of the page: a heading, a one-line explanation and what it shows."""

    title: str
    caption: str
    build: Callable[[Run], list[Any]]


SECTIONS: dict[str, Section] = {
    "headline": Section("Headline", "Logged-in users in the log and how many cancelled (churned).", _headline),
    "data_quality": Section(
        "Data quality", "Every row read is either kept or counted under the reason it was left out.", _quality
    ),
    "level": Section("Churn by subscription level", "Level at each user's last event, within each group.", _level),
    "pages": Section("Page usage by churn group", "How often users visit each page per 100 songs they play.", _pages),
    "songs": Section("Songs per user", "Songs played by each user over the whole log (one point per user).", _songs),
    "over_time": Section(
        "Churn over time", "Cancellations per week, and their share of the users active that week.", _over_time
    ),
    "retention": Section(
        "Retention",
        "Share of users not yet cancelled, by days since first seen (Kaplan-Meier with 95 % "
        "confidence bands; users who never cancelled count until the log ends), for all users and by level at "
        "the last event, with the log-rank test between paid and free.",
        _retention,
    ),
    "models": Section(
        "Model comparison",
        "Each model's mean score over repeated cross-validation folds with its spread (± 1 sd), "
        "next to the baselines; the table adds the score on held-out test users.",
        _models,
    ),
    "importance": Section(
        "What drives the prediction",
        "Feature importances of the chosen model (for logistic regression: the size of the standardised coefficient).",
        _importance,
    ),
    "campaign": Section(
        "Campaign: whom to contact",
        "Set the cost of contacting a user, the value of keeping a churner and the "
        "share of contacted churners an offer keeps: the expected profit of contacting the riskiest users first "
        "(calibrated churn probabilities) is recomputed from the run's stored scores, the list is cut at the "
        "profit-optimal number of users, with each user's main reasons.",
        campaign_section,
    ),
    "gains": Section(
        "Gains and lift",
        "Share of the held-out churners reached when contacting the riskiest held-out users first, "
        "per model; the table gives lift over random, capture and precision at the top 5, 10 and 20 %.",
        gains_section,
    ),
    "reliability": Section(
        "Can the probabilities be trusted?",
        "Observed churn rate against predicted probability on held-out users "
        "(on the diagonal: calibrated); the chosen model before and after calibration on training users' "
        "out-of-fold predictions, with Brier scores and their skill over the base rate.",
        reliability_section,
    ),
    "backtest": Section(
        "Backtest over time",
        "The chosen model trained on an earlier cutoff and judged on who actually cancelled "
        "after a later one, cutoff after cutoff, next to the random-split cross-validation figure.",
        backtest_section,
    ),
    "at_risk": Section(
        "Users at risk",
        "Active users scored by the chosen model, riskiest first; the slider starts at the "
        "model's decision threshold. Filter, then download the list.",
        _at_risk,
    ),
}


def figure_bundle(fig: go.Figure) -> dict[str, Any]:
    """The figure as a plotly MIME bundle, which Voila/JupyterLab draw with the plotly.js they serve (offline).

    Displaying this instead of ``fig.show()`` skips plotly's renderer module, whose import of
    nbformat/jsonschema costs seconds per page load.
    """
    spec = json.loads(fig.to_json())
    spec["config"] = {"displaylogo": False, "responsive": True}
    title = fig.layout.title.text or "figure"
    return {"application/vnd.plotly.v1+json": spec, "text/plain": f"<plotly figure: {title}>"}


def build_section(run: Run, key: str) -> list[Any]:
    """The displayable items (HTML, figures, widgets) of one section; raises MissingArtifact/ArtifactError."""
    return SECTIONS[key].build(run)


def show_header(run: Run | None, run_dir: str = "") -> None:
    """Display the page style and which run is shown, or, without a run, what to run to make one."""
    if run is None:
        display(HTML(STYLE + f'<div class="spk-notice spk-no-run">{no_run_message(run_dir)}</div>'))
        return
    manifest = run.manifest
    facts = [f"run <code>{html.escape(run.path.name)}</code>"]
    if manifest:
        facts.append(f"status {html.escape(str(manifest.get('status')))}")
        facts.append(f"started {html.escape(str(manifest.get('started')))}")
        facts.append(f"parameters {html.escape(Path(str(manifest.get('params_file'))).name)}")
    display(HTML(STYLE + f'<p class="spk-run">Showing {" · ".join(facts)} ({html.escape(str(run.path))}).</p>'))


def show_section(run: Run | None, key: str) -> None:
    """Display one section; a missing artifact becomes a notice naming the file and its notebook."""
    if run is None:
        return
    section = SECTIONS[key]
    display(
        HTML(
            f'<h3 class="spk-section" data-section="{key}">{html.escape(section.title)}</h3>'
            f'<p class="spk-caption">{html.escape(section.caption)}</p>'
        )
    )
    try:
        items = build_section(run, key)
    except MissingArtifact as exc:
        items = [HTML(notice(str(exc)))]
    except ArtifactError as exc:
        if run.strict:
            raise
        items = [HTML(notice(str(exc)))]
    for item in items:
        if isinstance(item, go.Figure):
            display(figure_bundle(item), raw=True)
        else:
            display(item)
