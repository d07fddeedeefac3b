"""The dashboard's decision sections: the campaign (economics sliders over the stored scores, the list cut
at the profit-optimal k), gains and lift, reliability of the probabilities, and the out-of-time backtest.
They read ``decisions.json``, ``backtest.json`` and the at-risk list of a run; nothing here touches Spark.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
import pandas as pd
from IPython.display import HTML

from sparkify_utils.artifacts import AT_RISK, BACKTEST, DECISIONS
from sparkify_utils.modeling.economics import EconomicsError
from sparkify_utils.report import model_plots
from sparkify_utils.report.analysis import campaign
from sparkify_utils.report.formatting import fmt
from sparkify_utils.report.html import MAX_TABLE_ROWS, csv_download_link, notice
from sparkify_utils.report.run import Run

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


def campaign_section(run: Run) -> list[Any]:
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


def gains_section(run: Run) -> list[Any]:
    decisions = run.json(DECISIONS)
    gains = pd.DataFrame(decisions["lift"]["gains"])
    return [model_plots.gains_figure(gains, _labels(decisions)), HTML(lift_summary(decisions))]


def reliability_section(run: Run) -> list[Any]:
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
    return [model_plots.reliability_figure(shown, _labels(decisions)), HTML(table)]


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


def backtest_section(run: Run) -> list[Any]:
    document = run.json(BACKTEST)
    text = HTML(f'<p class="spk-verdict spk-backtest-note">{html.escape(document["note"])}</p>')
    if document["skipped"] or not document["cutoffs"]:
        return [text]
    ok = pd.DataFrame([r for r in document["cutoffs"] if r.get("status") == "ok"])
    items: list[Any] = [model_plots.backtest_figure(ok, document["cross_validation"])] if len(ok) else []
    return [*items, text, HTML(backtest_table(document))]
