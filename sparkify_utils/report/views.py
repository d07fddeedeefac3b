"""The churn dashboard's page: sections of cards, figures, tables and widgets built from one run.

Everything that computes lives in the package so it is testable without a browser; the dashboard
notebook only calls :func:`~sparkify_utils.report.run.open_run`, :func:`show_header` and
:func:`show_section`. Voila does not pass papermill parameters, so ``sparkify dashboard`` hands the
run to the kernel through the ``SPARKIFY_RUN_DIR`` variable (see :mod:`sparkify_utils.report.server`).
"""

from __future__ import annotations

import base64
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
    BACKTEST,
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
from sparkify_utils.modeling.economics import EconomicsError
from sparkify_utils.report import plots
from sparkify_utils.report.analysis import (
    ALL_LEVELS,
    SHOWN_METRICS,
    campaign,
    chosen_importance,
    churn_by_week,
    filter_at_risk,
    level_table,
    model_scores,
    retention_curves,
)
from sparkify_utils.report.formatting import fmt
from sparkify_utils.report.run import ArtifactError, MissingArtifact, Run, no_run_message

#: The at-risk table shows this many rows at most; the download always holds the whole filtered list.
MAX_TABLE_ROWS = 200
#: Where the at-risk slider starts when the run has no model threshold.
DEFAULT_THRESHOLD = 0.5


def csv_download_link(table: pd.DataFrame, filename: str, label: str) -> str:
    """An HTML link that downloads ``table`` as CSV from a data URI (works offline, no server round trip)."""
    payload = base64.b64encode(table.to_csv(index=False).encode()).decode()
    return (
        f'<a class="spk-download" download="{html.escape(filename)}" '
        f'href="data:text/csv;base64,{payload}">{html.escape(label)}</a>'
    )


# --- sections -----------------------------------------------------------------------------------

STYLE = """<style>
.spk-cards {display: flex; flex-wrap: wrap; gap: 12px; margin: 8px 0 4px;}
.spk-card {border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; min-width: 120px;}
.spk-card .spk-label {color: #666; font-size: 12px;}
.spk-card .spk-value {font-size: 22px; font-weight: 600;}
.spk-notice {border-left: 4px solid #e0a800; background: #fff8e1; padding: 8px 12px; margin: 6px 0;}
.spk-caption {color: #555; margin-top: 0;}
.spk-table {border-collapse: collapse; font-size: 13px;}
.spk-table td, .spk-table th {border-bottom: 1px solid #eee; padding: 3px 10px; text-align: right;}
.spk-at-risk td:last-child, .spk-at-risk th:last-child {text-align: left;}
.spk-verdict {white-space: normal; max-width: 60em;}
.spk-download {color: #1a6fb5; text-decoration: underline;}
</style>"""


def notice(message: str) -> str:
    """A highlighted HTML box for a section that cannot be shown (why, and what to run)."""
    return f'<div class="spk-notice">{html.escape(message)}</div>'


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
    return [plots.cv_scores_figure(model_scores(metrics)), HTML(model_table(metrics))]


def _importance(run: Run) -> list[Any]:
    importance = run.csv(FEATURE_IMPORTANCE)
    label, rows = chosen_importance(importance, run.json(MODEL_METRICS))
    return [plots.importance_figure(rows, f"Feature importance: {label}")]


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


#: Headers of the campaign list (the CSV download keeps every column of at_risk_users.csv).
CAMPAIGN_HEADERS = {
    "userId": "user",
    "probability": "churn probability",
    "level": "level",
    "top_features": "main reasons (signed contribution to the model's output)",
}


def _economics_slider(key: str, label: str, value: float, low: float, high: float, step: float) -> widgets.FloatSlider:
    slider = widgets.FloatSlider(
        value=value,
        min=low,
        max=max(high, value),
        step=step,
        description=label,
        continuous_update=False,
        style={"description_width": "initial"},
        layout={"width": "360px"},
        readout_format=".2f",
    )
    slider.add_class(f"spk-{key.replace('_', '-')}")
    return slider


def profit_svg(curve: pd.DataFrame, best: dict[str, Any], width: int = 640, height: int = 240) -> str:
    """The expected-profit curve as an inline SVG line chart, with the best k marked and the zero line.

    Drawn in the kernel as plain markup so the campaign widget redraws it with its sliders through an HTML
    widget: an Output widget holding a plotly chart can leave a notebook run waiting (jupyter/nbclient#312).
    """
    left, right, top, bottom = 60, 15, 15, 35
    k, profit = curve["k"].to_numpy(float), curve["expected_profit"].to_numpy(float)
    low, high = min(0.0, float(profit.min())), max(0.0, float(profit.max()))
    span_x, span_y = max(float(k.max()), 1.0), (high - low) or 1.0

    def x(value: float) -> float:
        return left + (width - left - right) * value / span_x

    def y(value: float) -> float:
        return top + (height - top - bottom) * (high - value) / span_y

    step = max(1, len(k) // 400)  # at most ~400 points on the line
    points = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in zip(k[::step], profit[::step], strict=True))
    points += f" {x(k[-1]):.1f},{y(profit[-1]):.1f}"
    bx, by = x(best["k"]), y(best["profit"])
    return (
        f'<svg class="spk-profit" width="{width}" height="{height}" role="img" '
        f'aria-label="expected profit by users contacted">'
        f'<line x1="{left}" y1="{y(0):.1f}" x2="{width - right}" y2="{y(0):.1f}" stroke="#999" stroke-width="1"/>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#ccc"/>'
        f'<polyline fill="none" stroke="#4C78A8" stroke-width="2" points="{points}"/>'
        f'<line x1="{bx:.1f}" y1="{top}" x2="{bx:.1f}" y2="{height - bottom}" stroke="#333" stroke-dasharray="4 3"/>'
        f'<circle cx="{bx:.1f}" cy="{by:.1f}" r="4" fill="#E45756"/>'
        f'<text x="{min(bx + 6, width - 170):.1f}" y="{top + 12}" font-size="12">best k = {best["k"]:,}: '
        f"{best['profit']:,.1f}</text>"
        f'<text x="{left - 6}" y="{y(high) + 4:.1f}" font-size="11" text-anchor="end">{high:,.0f}</text>'
        f'<text x="{left - 6}" y="{y(low) + 4:.1f}" font-size="11" text-anchor="end">{low:,.0f}</text>'
        f'<text x="{left}" y="{height - 18}" font-size="11">0</text>'
        f'<text x="{width - right}" y="{height - 18}" font-size="11" text-anchor="end">{int(k.max()):,}</text>'
        f'<text x="{(left + width - right) / 2:.0f}" y="{height - 4}" font-size="12" text-anchor="middle">'
        f"users contacted, riskiest first (expected profit)</text></svg>"
    )


def campaign_widget(decisions: dict[str, Any], scored: pd.DataFrame) -> widgets.VBox:
    """Sliders for the three campaign parameters; on every change the profit curve, its best k, the held-out check
    and the list of the top k users (with their reasons, downloadable) are recomputed from the stored scores."""
    params = decisions["economics"]["parameters"]
    sliders = {
        "contact_cost": _economics_slider("contact_cost", "Cost per contact", params["contact_cost"], 0.5, 50.0, 0.5),
        "churner_value": _economics_slider(
            "churner_value", "Value of a kept churner", params["churner_value"], 1.0, 500.0, 1.0
        ),
        "save_rate": _economics_slider(
            "save_rate", "Share of contacted churners saved", params["save_rate"], 0.0, 1.0, 0.01
        ),
    }
    summary, chart, body = widgets.HTML(), widgets.HTML(), widgets.HTML()
    headers = {c: h for c, h in CAMPAIGN_HEADERS.items() if c in scored.columns}

    def refresh(_: object = None) -> None:
        values = {key: slider.value for key, slider in sliders.items()}
        try:
            plan = campaign(decisions, scored, **values)
        except EconomicsError as exc:
            summary.value, body.value, chart.value = notice(str(exc)), "", ""
            return
        best, held, econ = plan["best"], plan["held_out"], plan["economics"]
        contacted = plan["contacted"]
        name = (
            f"campaign_top{best['k']}_cost{values['contact_cost']:g}_value{values['churner_value']:g}"
            f"_save{values['save_rate']:g}.csv"
        )
        pays = (
            f"contact the top <b>{best['k']:,}</b> of {len(scored):,} scored users (calibrated churn probability "
            f"&ge; {best['threshold']:.3f}) for an expected profit of <b>{best['profit']:,.1f}</b>"
            if best["k"]
            else f"no scored user is worth contacting (none above p = {econ.break_even_probability:.3f})"
        )
        link = csv_download_link(contacted, name, f"Download these {len(contacted):,} users as CSV")
        summary.value = (
            f'<p class="spk-campaign-count" data-k="{best["k"]}">Contacting pays above a churn probability of '
            f"{econ.break_even_probability:.3f}: {pays}. On the {held['users']} held-out users the same rule "
            f"contacts {held['k']} and would have earned {held['realised_profit']:,.1f} (expected "
            f"{held['profit']:,.1f}). {link}</p>"
        )
        chart.value = profit_svg(plan["curve"], best)
        page = contacted.head(MAX_TABLE_ROWS)[list(headers)].rename(columns=headers)
        body.value = page.to_html(
            index=False,
            classes="spk-table spk-campaign",
            border=0,
            na_rep="",
            formatters={"churn probability": "{:.3f}".format},
        )

    for slider in sliders.values():
        slider.observe(refresh, "value")
    refresh()
    return widgets.VBox([widgets.HBox(list(sliders.values())), summary, chart, body])


def _campaign(run: Run) -> list[Any]:
    return [campaign_widget(run.json(DECISIONS), run.csv(AT_RISK))]


def _labels(decisions: dict[str, Any]) -> dict[str, str]:
    return decisions["lift"].get("labels", {})


def lift_summary(decisions: dict[str, Any]) -> str:
    """HTML table of lift, capture and precision at the top 5/10/20 % of held-out users, per model."""
    table = pd.DataFrame(decisions["lift"]["models"])
    labels = _labels(decisions)
    rows = []
    for model, group in table.groupby("model", sort=False):
        cells = "".join(
            f"<td>{r['lift']:.2f}× · {r['capture']:.0%} · {r['precision']:.0%}</td>"
            for _, r in group.sort_values("share").iterrows()
        )
        style = ' style="font-weight: 600"' if model == decisions["chosen_model"] else ""
        rows.append(f"<tr{style}><th>{html.escape(labels.get(model, model))}</th>{cells}</tr>")
    head = "".join(f"<th>top {share:.0%}</th>" for share in sorted(table["share"].unique()))
    return (
        f'<table class="spk-table spk-lift"><tr><th>lift · capture · precision</th>{head}</tr>{"".join(rows)}</table>'
    )


def _gains(run: Run) -> list[Any]:
    decisions = run.json(DECISIONS)
    gains = pd.DataFrame(decisions["lift"]["gains"])
    return [plots.gains_figure(gains, _labels(decisions)), HTML(lift_summary(decisions))]


def _reliability(run: Run) -> list[Any]:
    decisions = run.json(DECISIONS)
    curves = pd.DataFrame(decisions["calibration"]["reliability"])
    chosen = decisions["chosen_model"]
    shown = curves[(curves["scale"] == "raw") | (curves["model"] == chosen)]
    rows = "".join(
        f"<tr><th>{html.escape(r['label'])}</th><td>{html.escape(r['method'])}</td><td>{r['brier_raw']:.3f}</td>"
        f"<td>{r['brier_calibrated']:.3f}</td><td>{r['skill_raw']:+.2f}</td><td>{r['skill_calibrated']:+.2f}</td></tr>"
        for r in decisions["calibration"]["models"]
    )
    table = (
        '<table class="spk-table spk-calibration"><tr><th>model</th><th>calibration</th><th>Brier raw</th>'
        f"<th>Brier calibrated</th><th>skill raw</th><th>skill calibrated</th></tr>{rows}</table>"
    )
    return [plots.reliability_figure(shown, _labels(decisions)), HTML(table)]


def backtest_table(document: dict[str, Any]) -> str:
    """HTML table of the backtest per test cutoff, pooled, and the random-split CV figure beside them."""

    def cell(value: Any, spec: str = ".3f") -> str:
        return f"<td>{fmt(value, spec, '–')}</td>"

    rows = []
    for r in document["cutoffs"]:
        if r.get("status") == "ok":
            rows.append(
                f"<tr><th>{html.escape(r['test_cutoff'])}</th><td>{r['test_users']}</td>"
                f"<td>{r['test_churners']}</td>{cell(r['f1'])}{cell(r['pr_auc'])}{cell(r['lift_10'], '.2f')}"
                f"{cell(r['brier'])}</tr>"
            )
        else:
            rows.append(
                f'<tr><th>{html.escape(r["test_cutoff"])}</th><td colspan="6">'
                f"{html.escape(str(r.get('status')))}</td></tr>"
            )
    o, cv = document["overall"], document["cross_validation"]
    if o:
        rows.append(
            f'<tr style="font-weight: 600"><th>pooled</th><td>{o["users"]}</td><td>{o["churners"]}</td>'
            f"{cell(o['f1'])}{cell(o['pr_auc'])}{cell(o['lift_10'], '.2f')}{cell(o['brier'])}</tr>"
        )
    if cv:
        rows.append(
            f"<tr><th>random-split CV ({html.escape(cv['label_mode'])})</th><td></td><td></td>"
            f"<td>{cv['f1_mean']:.3f} ± {cv['f1_sd']:.3f}</td><td>{cv['pr_auc_mean']:.3f} ± "
            f"{cv['pr_auc_sd']:.3f}</td><td></td><td></td></tr>"
        )
    head = "".join(f"<th>{h}</th>" for h in ("test cutoff", "users", "churners", "F1", "PR-AUC", "lift@10%", "Brier"))
    return f'<table class="spk-table spk-backtest"><tr>{head}</tr>{"".join(rows)}</table>'


def _backtest(run: Run) -> list[Any]:
    document = run.json(BACKTEST)
    text = HTML(f'<p class="spk-verdict spk-backtest-note">{html.escape(document["note"])}</p>')
    if document["skipped"] or not document["cutoffs"]:
        return [text]
    ok = pd.DataFrame([r for r in document["cutoffs"] if r.get("status") == "ok"])
    items: list[Any] = [plots.backtest_figure(ok, document["cross_validation"])] if len(ok) else []
    return [*items, text, HTML(backtest_table(document))]


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
        _campaign,
    ),
    "gains": Section(
        "Gains and lift",
        "Share of the held-out churners reached when contacting the riskiest held-out users first, "
        "per model; the table gives lift over random, capture and precision at the top 5, 10 and 20 %.",
        _gains,
    ),
    "reliability": Section(
        "Can the probabilities be trusted?",
        "Observed churn rate against predicted probability on held-out users "
        "(on the diagonal: calibrated); the chosen model before and after calibration on training users' "
        "out-of-fold predictions, with Brier scores and their skill over the base rate.",
        _reliability,
    ),
    "backtest": Section(
        "Backtest over time",
        "The chosen model trained on an earlier cutoff and judged on who actually cancelled "
        "after a later one, cutoff after cutoff, next to the random-split cross-validation figure.",
        _backtest,
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
