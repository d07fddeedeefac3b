"""The churn dashboard: reads one run's small artifacts (never Spark) and lays them out for Voila.

Everything that computes lives here so it is testable without a browser; ``notebooks/04_dashboard``
only calls :func:`open_run` and :func:`show_section`. Voila does not pass papermill parameters, so
``sparkify dashboard`` hands the run to the kernel through the ``SPARKIFY_RUN_DIR`` variable.
"""

from __future__ import annotations

import base64
import html
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from IPython.display import HTML, display

from sparkify_utils import config, plots

#: Environment variable through which ``serve`` tells the Voila kernel which run to show.
RUN_DIR_ENV = "SPARKIFY_RUN_DIR"
DASHBOARD_NOTEBOOK = config.NOTEBOOKS_DIR / "04_dashboard.ipynb"
DAY_MS = 86_400_000
#: The at-risk table shows this many rows at most; the download always holds the whole filtered list.
MAX_TABLE_ROWS = 200
ALL_LEVELS = "all"
#: Where the at-risk slider starts when the run has no model threshold.
DEFAULT_THRESHOLD = 0.5

#: Artifact file -> the notebook that writes it (named in the notice when the file is missing).
ARTIFACT_WRITERS = {
    "eda_summary.json": "01_eda",
    "data_quality.json": "01_eda",
    "level_churn_byUser.csv": "01_eda",
    "page_churn_byUser.csv": "01_eda",
    "numofsongs_byUser.csv": "01_eda",
    "user_lifetimes.csv": "01_eda",
    "metrics.json": "03_model_comparison",
    "feature_importance.csv": "03_model_comparison",
    "at_risk_users.csv": "03_model_comparison",
}


class MissingArtifact(FileNotFoundError):
    """An artifact the dashboard needs is not in the run; the message names the notebook that writes it."""


class ArtifactError(ValueError):
    """An artifact exists but does not have the expected content (e.g. a column is missing)."""


@dataclass(frozen=True)
class Run:
    """One run directory as the dashboard sees it.

    ``strict`` is set when the runner executes the dashboard as the last step of a run: then a
    malformed artifact, or a missing one whose notebook reported success, fails the run instead of
    being shown as a notice (a notice is right for a viewer of an old or partial run).
    """

    path: Path
    strict: bool = False
    manifest: dict[str, Any] = field(default_factory=dict)

    def file(self, name: str) -> Path:
        """Path of an artifact; raise MissingArtifact naming the notebook that should have written it."""
        path = self.path / name
        if path.is_file():
            return path
        writer = ARTIFACT_WRITERS.get(name, "an earlier notebook")
        state = self.manifest.get("notebooks", {}).get(writer, {}).get("status")
        why = {
            "failed": f"notebook {writer} failed in this run (see {self.path / 'notebooks' / writer}.ipynb)",
            "ok": f"notebook {writer} reported success but did not write it",
            "pending": f"notebook {writer} has not run yet in this run",
        }.get(state, f"it is written by notebook {writer}, which did not run in this run")
        message = f"{name} is missing from run {self.path.name}: {why}."
        if self.strict and state == "ok":
            raise ArtifactError(message)
        raise MissingArtifact(message)

    def json(self, name: str, keys: tuple[str, ...] = ()) -> dict[str, Any]:
        """A JSON artifact, checked for the top-level ``keys`` the dashboard reads."""
        data = json.loads(self.file(name).read_text())
        missing = [k for k in keys if k not in data]
        if missing:
            raise ArtifactError(f"{name} lacks {missing} (it has {sorted(data)}); re-run {ARTIFACT_WRITERS[name]}.")
        return data

    def csv(self, name: str, columns: tuple[str, ...] = ()) -> pd.DataFrame:
        """A CSV artifact, checked for the ``columns`` the dashboard reads."""
        table = pd.read_csv(self.file(name), dtype={"userId": str})
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise ArtifactError(
                f"{name} lacks columns {missing} (it has {list(table.columns)}); re-run {ARTIFACT_WRITERS[name]}."
            )
        return table


def resolve_run_dir(run_dir: str = "") -> Path:
    """The run to show: ``run_dir`` if given, else ``$SPARKIFY_RUN_DIR``, else ``outputs/latest``."""
    chosen = run_dir or os.environ.get(RUN_DIR_ENV, "")
    if not chosen:
        return config.latest_link()
    path = Path(chosen).expanduser()
    if not path.is_absolute() and not path.exists() and (config.runs_dir() / chosen).exists():
        return config.runs_dir() / chosen  # a bare run id
    return path if path.is_absolute() else config.PROJECT_ROOT / path


def open_run(run_dir: str = "") -> Run | None:
    """Open the run to show (see :func:`resolve_run_dir`), or None when it does not exist."""
    path = resolve_run_dir(run_dir)
    if not path.is_dir():
        return None
    manifest_path = path / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    return Run(path=path.resolve(), strict=bool(run_dir), manifest=manifest)


def no_run_message(run_dir: str = "") -> str:
    """What the page says when there is no run to show, with the command that makes one."""
    path = resolve_run_dir(run_dir)
    if path == config.latest_link():
        return (
            f"No run yet: {path} does not exist. Run <code>make run</code> (or <code>sparkify run</code>) "
            "to analyse the data, then reload this page."
        )
    return (
        f"Run directory {html.escape(str(path))} does not exist. Choose an existing run under "
        f"{html.escape(str(config.runs_dir()))}, or run <code>make run</code> to make a new one."
    )


# --- computations on the per-user tables -------------------------------------------------------


def kaplan_meier(durations: pd.Series, observed: pd.Series) -> pd.DataFrame:
    """Product-limit survival estimate: one row per distinct time, starting at (0, 1.0).

    ``observed`` is 1 where the event happened at that duration and 0 where the user was still
    under observation then (censored). At tied times events count before censorings, as usual.
    """
    frame = pd.DataFrame({"t": np.asarray(durations, dtype=float), "d": np.asarray(observed, dtype=int)})
    if frame["t"].isna().any() or (frame["t"] < 0).any():
        raise ValueError("durations must be non-negative numbers; a user is seen after their last event?")
    grouped = frame.groupby("t")["d"].agg(events="sum", leaving="size").sort_index()
    at_risk = len(frame) - grouped["leaving"].cumsum().shift(fill_value=0)
    survival = (1 - grouped["events"] / at_risk).cumprod()
    table = pd.DataFrame({
        "time": grouped.index, "at_risk": at_risk.to_numpy(), "events": grouped["events"].to_numpy(),
        "censored": (grouped["leaving"] - grouped["events"]).to_numpy(), "survival": survival.to_numpy(),
    })
    start = pd.DataFrame({"time": [0.0], "at_risk": [len(frame)], "events": [0], "censored": [0], "survival": [1.0]})
    return pd.concat([start, table], ignore_index=True)


#: Columns of ``user_lifetimes.csv`` (the users table of notebook 01) that the time sections read.
LIFETIME_COLUMNS = ("userId", "churn", "churn_ts", "first_ts", "last_ts")


def retention_curves(lifetimes: pd.DataFrame) -> pd.DataFrame:
    """Share of users not yet cancelled by days since first seen: all users (KM) and churners only.

    Users who never cancelled are censored at the end of the log (they were still subscribed
    then); churners' durations end at their cancellation, so their curve falls to zero.
    """
    end_ts = lifetimes["last_ts"].max()
    churned = lifetimes["churn"].astype(int) == 1
    stop = lifetimes["churn_ts"].where(churned, end_ts)
    days = (stop - lifetimes["first_ts"]) / DAY_MS
    curves = [
        kaplan_meier(days, churned).assign(group=f"All users ({len(lifetimes)})"),
        kaplan_meier(days[churned], churned[churned]).assign(group=f"Churners ({int(churned.sum())})"),
    ]
    return pd.concat(curves, ignore_index=True).assign(day=lambda t: t["time"])


def churn_by_week(lifetimes: pd.DataFrame) -> pd.DataFrame:
    """Cancellations per week (Monday start, UTC) and their share of the users active that week."""
    # Compared in epoch ms: pandas < 3 can raise a spurious FloatingPointError converting a float column
    # with NaN (non-churners' churn_ts) to datetimes (pandas-dev/pandas#58419). NaN compares false.
    first, last = lifetimes["first_ts"], lifetimes["last_ts"]
    churn_ts = lifetimes["churn_ts"].where(lifetimes["churn"].astype(int) == 1)
    first_week = pd.Timestamp(int(first.min()), unit="ms").to_period("W-SUN").start_time
    weeks = pd.date_range(first_week, pd.Timestamp(int(last.max()), unit="ms"), freq="W-MON")
    rows = []
    for start in weeks:
        lo = (start - pd.Timestamp(0)) // pd.Timedelta(milliseconds=1)
        hi = lo + 7 * DAY_MS
        active = int(((first < hi) & (last >= lo)).sum())
        cancelled = int(((churn_ts >= lo) & (churn_ts < hi)).sum())
        rows.append((start, active, cancelled, cancelled / active if active else float("nan")))
    return pd.DataFrame(rows, columns=["week", "active_users", "cancellations", "churn_rate"])


def filter_at_risk(table: pd.DataFrame, threshold: float, level: str = ALL_LEVELS) -> pd.DataFrame:
    """At-risk users with probability >= ``threshold`` (and of ``level`` unless "all"), riskiest first."""
    kept = table[table["probability"] >= threshold]
    if level != ALL_LEVELS:
        kept = kept[kept["level"] == level]
    return kept.sort_values(["probability", "userId"], ascending=[False, True]).reset_index(drop=True)


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
    keys = ("users", "churners", "churn_rate", "first_event", "last_event", "days", "events", "songs")
    return [HTML(headline_cards(run.json("eda_summary.json", keys)))]


def _quality(run: Run) -> list[Any]:
    keys = ("rows_read", "rows_kept", "anonymous_rows", "rows_excluded", "rows_quarantined", "bad_row_policy",
            "files_read")
    return [HTML(quality_summary(run.json("data_quality.json", keys)))]


def level_table(per_user: pd.DataFrame) -> pd.DataFrame:
    """Users by level (rows) and churn group (columns 0/1) from ``level_churn_byUser.csv``."""
    table = pd.crosstab(per_user["level"].fillna("unknown"), per_user["churn"].astype(int))
    return table.reindex(columns=[0, 1], fill_value=0)


def _level(run: Run) -> list[Any]:
    per_user = run.csv("level_churn_byUser.csv", ("userId", "churn", "level"))
    summary = run.json("eda_summary.json", ("chi2_statistic", "chi2_p_value", "chi2_note"))
    test = {"statistic": summary["chi2_statistic"], "p_value": summary["chi2_p_value"], "note": summary["chi2_note"]}
    return [plots.level_figure(level_table(per_user), test)]


def _pages(run: Run) -> list[Any]:
    pages = run.csv("page_churn_byUser.csv", ("page", "churn", "mean_per_100_songs"))
    return [plots.page_rates_figure(pages)]


def _songs(run: Run) -> list[Any]:
    per_user = run.csv("numofsongs_byUser.csv", ("userId", "churn", "songs"))
    return [plots.box_figure(per_user, "songs", "Songs played per user", "songs")]


def _lifetimes(run: Run) -> pd.DataFrame:
    return run.csv("user_lifetimes.csv", LIFETIME_COLUMNS)


def _over_time(run: Run) -> list[Any]:
    return [plots.churn_by_week_figure(churn_by_week(_lifetimes(run)))]


def _retention(run: Run) -> list[Any]:
    return [plots.retention_figure(retention_curves(_lifetimes(run)))]


#: Metrics the model comparison shows (of the seven in metrics.json), with their display names.
MODEL_METRICS = {"f1": "churn F1", "pr_auc": "PR-AUC", "roc_auc": "ROC-AUC"}


def _model_label(metrics: dict[str, Any], model: str) -> str:
    return metrics["models"].get(model, {}).get("label", model)


def model_scores(metrics: dict[str, Any]) -> pd.DataFrame:
    """Each model's CV mean and sd per shown metric from ``metrics.json``: model, metric, mean, sd."""
    return pd.DataFrame([
        {"model": _model_label(metrics, model), "metric": label, "mean": entry["cv"][metric]["mean"],
         "sd": entry["cv"][metric]["sd"]}
        for metric, label in MODEL_METRICS.items()
        for model, entry in metrics["models"].items()
    ])


def model_table(metrics: dict[str, Any]) -> str:
    """HTML table: each model's CV mean ± sd and held-out score per metric, the chosen model in bold."""
    head = "".join(f"<th>{label} (CV)</th><th>{label} (test)</th>" for label in MODEL_METRICS.values())
    rows = []
    for model, entry in metrics["models"].items():
        cv, test = entry["cv"], entry["test"]
        cells = "".join(
            f"<td>{_fmt(cv[m]['mean'])} ± {_fmt(cv[m]['sd'])}</td><td>{_fmt(test.get(m))}</td>" for m in MODEL_METRICS
        )
        style = ' style="font-weight: 600"' if model == metrics.get("chosen_model") else ""
        rows.append(f"<tr{style}><th>{html.escape(entry.get('label', model))}</th>{cells}</tr>")
    verdict = html.escape(metrics.get("verdict", "")).replace("\n", "<br>")
    return (f'<p class="spk-verdict">{verdict}</p><table class="spk-table spk-models"><tr><th>model</th>{head}</tr>'
            f'{"".join(rows)}</table>')


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _models(run: Run) -> list[Any]:
    metrics = run.json("metrics.json", ("models",))
    return [plots.cv_scores_figure(model_scores(metrics)), HTML(model_table(metrics))]


def chosen_importance(importance: pd.DataFrame, metrics: dict[str, Any]) -> tuple[str, pd.DataFrame]:
    """The chosen model's rows of ``feature_importance.csv`` and its display name."""
    chosen = metrics["chosen_model"]
    rows = importance[importance["model"] == chosen]
    if rows.empty:
        raise ArtifactError(f"feature_importance.csv has no rows for the chosen model {chosen!r}; re-run "
                            f"{ARTIFACT_WRITERS['feature_importance.csv']}.")
    return _model_label(metrics, chosen), rows


def _importance(run: Run) -> list[Any]:
    importance = run.csv("feature_importance.csv", ("model", "feature", "importance"))
    label, rows = chosen_importance(importance, run.json("metrics.json", ("chosen_model", "models")))
    return [plots.importance_figure(rows, f"Feature importance: {label}")]


AT_RISK_COLUMNS = ("userId", "probability", "level")


#: Headers of the at-risk table on the page (the CSV download keeps the file's own column names).
AT_RISK_HEADERS = {
    "userId": "user", "probability": "churn probability", "level": "level",
    "recency_days": "days since last activity", "top_features": "main reasons",
}


AT_RISK_FORMATS = {"churn probability": "{:.3f}".format, "days since last activity": "{:.1f}".format}


def at_risk_widget(table: pd.DataFrame, threshold: float = DEFAULT_THRESHOLD) -> widgets.VBox:
    """Threshold slider + level filter over the at-risk users, with the filtered table and a CSV link."""
    slider = widgets.FloatSlider(
        value=threshold, min=0.0, max=1.0, step=0.01, description="Probability threshold", readout_format=".3f",
        continuous_update=False, style={"description_width": "initial"}, layout={"width": "420px"},
    )
    level = widgets.Dropdown(options=[ALL_LEVELS, *sorted(table["level"].dropna().unique())], description="Level")
    slider.add_class("spk-threshold")
    level.add_class("spk-level")
    summary, body = widgets.HTML(), widgets.HTML()
    # Optional columns the scoring table could not fill (e.g. no recency feature) are left out.
    headers = {c: h for c, h in AT_RISK_HEADERS.items()
               if c in ("userId", "probability") or (c in table.columns and table[c].notna().any())}

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
        body.value = page.to_html(index=False, classes="spk-table spk-at-risk", border=0, na_rep="",
                                  formatters=AT_RISK_FORMATS)

    slider.observe(refresh, "value")
    level.observe(refresh, "value")
    refresh()
    return widgets.VBox([widgets.HBox([slider, level]), summary, body])


def model_threshold(run: Run) -> float:
    """The chosen model's decision threshold from ``metrics.json`` (0.5 when the file is missing)."""
    try:
        metrics = run.json("metrics.json", ("chosen_model", "models"))
    except MissingArtifact:
        return DEFAULT_THRESHOLD
    return float(metrics["models"][metrics["chosen_model"]]["threshold"])


def _at_risk(run: Run) -> list[Any]:
    return [at_risk_widget(run.csv("at_risk_users.csv", AT_RISK_COLUMNS), model_threshold(run))]


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
    "pages": Section(
        "Page usage by churn group", "How often users visit each page per 100 songs they play.", _pages
    ),
    "songs": Section("Songs per user", "Songs played by each user over the whole log (one point per user).", _songs),
    "over_time": Section(
        "Churn over time", "Cancellations per week, and their share of the users active that week.", _over_time
    ),
    "retention": Section(
        "Retention", "Share of users not yet cancelled, by days since first seen (Kaplan-Meier; users who "
        "never cancelled count until the log ends).", _retention,
    ),
    "models": Section(
        "Model comparison", "Each model's mean score over repeated cross-validation folds with its spread (± 1 sd), "
        "next to the baselines; the table adds the score on held-out test users.",
        _models,
    ),
    "importance": Section(
        "What drives the prediction", "Feature importances of the chosen model (for logistic regression: the "
        "size of the standardised coefficient).", _importance,
    ),
    "at_risk": Section(
        "Users at risk", "Active users scored by the chosen model, riskiest first; the slider starts at the "
        "model's decision threshold. Filter, then download the list.", _at_risk,
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
    display(HTML(f'<h3 class="spk-section" data-section="{key}">{html.escape(section.title)}</h3>'
                 f'<p class="spk-caption">{html.escape(section.caption)}</p>'))
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


# --- serving ----------------------------------------------------------------------------------


def voila_command(port: int, notebook: Path = DASHBOARD_NOTEBOOK) -> list[str]:
    """The Voila command line: loopback only, code hidden, no tracebacks sent to the page."""
    return [
        sys.executable, "-m", "voila", str(notebook), "--no-browser", "--Voila.ip=127.0.0.1",
        f"--Voila.port={port}", "--Voila.port_retries=0", "--strip_sources=True",
        "--VoilaConfiguration.show_tracebacks=False",
    ]


def dashboard_env(run_dir: str = "") -> dict[str, str]:
    """The environment for Voila: the run (if any) in ``SPARKIFY_RUN_DIR``, resolved to an absolute path."""
    env = dict(os.environ)
    if run_dir:
        # On the command line a relative path is relative to the shell's directory first.
        path = Path(run_dir).expanduser() if Path(run_dir).expanduser().is_dir() else resolve_run_dir(run_dir)
        if not path.is_dir():
            raise FileNotFoundError(f"Run directory {path} does not exist. Fix: pass an existing run to --run-dir.")
        env[RUN_DIR_ENV] = str(path.resolve())
    else:
        env.pop(RUN_DIR_ENV, None)
    return env


def serve(run_dir: str = "", port: int = 8866) -> int:
    """Serve the dashboard with Voila on 127.0.0.1 until interrupted; return Voila's exit code."""
    env = dashboard_env(run_dir)
    shown = env.get(RUN_DIR_ENV) or f"{config.latest_link()} (the latest successful run)"
    print(f"Churn dashboard of {shown}\n  open http://127.0.0.1:{port}/   (Ctrl-C to stop)", flush=True)
    with subprocess.Popen(voila_command(port), env=env, cwd=config.PROJECT_ROOT) as server:
        # Pass a termination on to Voila, which then stops its kernels; dying alone would orphan them.
        previous = signal.signal(signal.SIGTERM, lambda *_: server.terminate())
        try:
            return server.wait()
        except KeyboardInterrupt:
            # Voila got the same Ctrl-C: give it time to shut its kernels down rather than killing it.
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.terminate()
            print("Dashboard stopped.")
            return 0
        finally:
            signal.signal(signal.SIGTERM, previous)
