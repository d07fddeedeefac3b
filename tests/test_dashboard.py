"""The dashboard's logic on small fake runs: loading, missing pieces, filters, the retention math."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from IPython.display import HTML

from sparkify_utils import artifacts, paths
from sparkify_utils.data import schema
from sparkify_utils.modeling.economics import EconomicsError
from sparkify_utils.modeling.survival import durations, kaplan_meier
from sparkify_utils.report import analysis, decision_views, run, server, views
from sparkify_utils.report.analysis import filter_at_risk, retention_curves
from sparkify_utils.report.run import ArtifactError, MissingArtifact, Run, open_run
from sparkify_utils.report.views import build_section
from sparkify_utils.runtime.params import notebook_parameters

DAY = schema.DAY_MS
START = 1_538_352_000_000  # 2018-10-01 00:00 UTC


def write_fake_run(path: Path, users: int = 40, seed: int = 0) -> Path:
    """A run directory with plausible artifacts of every notebook, in the formats they write."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    ids = [str(i) for i in range(1, users + 1)]
    churn = (rng.random(users) < 0.25).astype(int)
    churn[:2] = [1, 0]
    levels = rng.choice(["free", "paid"], users)
    first = START + rng.integers(0, 20 * DAY, users)
    last = np.minimum(first + rng.integers(DAY, 40 * DAY, users), START + 60 * DAY)
    lifetimes = pd.DataFrame(
        {
            "userId": ids,
            "churn": churn,
            "churn_ts": np.where(churn == 1, last, np.nan),
            "first_ts": first,
            "last_ts": last,
        }
    )
    lifetimes.to_csv(path / "user_lifetimes.csv", index=False)
    songs = rng.integers(10, 2000, users)
    pd.DataFrame({"churn": churn, "userId": ids, "level": levels}).to_csv(path / "level_churn_byUser.csv", index=False)
    pd.DataFrame({"churn": churn, "userId": ids, "songs": songs}).to_csv(path / "numofsongs_byUser.csv", index=False)
    pages = pd.DataFrame(
        [
            {
                "page": page,
                "churn": c,
                "count": int(rng.integers(1, 500)),
                "page_total": 0,
                "share": 0.5,
                "users": int((churn == c).sum()),
                "mean_per_100_songs": rng.random() * 5,
                "median_per_100_songs": rng.random() * 5,
            }
            for page in ("Thumbs Up", "Thumbs Down", "Roll Advert", "Add Friend", "NextSong")
            for c in (0, 1)
        ]
    )
    pages.to_csv(path / "page_churn_byUser.csv", index=False)
    summary = {
        "users": users,
        "churners": int(churn.sum()),
        "churn_rate": float(churn.mean()),
        "events": 12345,
        "anonymous_events": 321,
        "songs": int(songs.sum()),
        "first_event": "2018-10-01T00:01:57+00:00",
        "last_event": "2018-12-01T23:59:00+00:00",
        "days": 62,
        "rows_read": 12400,
        "rows_bad": 55,
        "chi2_statistic": 1.5,
        "chi2_p_value": 0.22,
        "chi2_dof": 1,
        "chi2_note": "chi-square test",
    }
    (path / "eda_summary.json").write_text(json.dumps(summary))
    quality = {
        "files_read": 1,
        "bad_row_policy": "quarantine",
        "rows_read": 12400,
        "rows_kept": 12345,
        "anonymous_rows": 321,
        "rows_excluded": dict.fromkeys(("malformed_json", "duplicate"), 0),
        "rows_quarantined": {"malformed_json": 5, "duplicate": 50},
    }
    (path / "data_quality.json").write_text(json.dumps(quality))
    labels = {"lr": "logistic regression", "gbt": "gradient-boosted trees", "majority": "always majority"}
    names = ("f1", "precision", "recall", "pr_auc", "roc_auc", "accuracy", "weighted_f1")
    folds = {m: {k: list(rng.uniform(0.2, 0.8, 6)) for k in names} for m in labels}
    models = {
        m: {
            "label": label,
            "cv": {k: {"mean": float(np.mean(folds[m][k])), "sd": float(np.std(folds[m][k]))} for k in names},
            "test": {k: float(rng.uniform(0.2, 0.8)) for k in names},
            "threshold": 0.42,
        }
        for m, label in labels.items()
    }
    metrics = {
        "chosen_model": "gbt",
        "verdict": "Chosen model: gbt.\nvs lr: within the spread.",
        "models": models,
        "folds": folds,
    }
    (path / "metrics.json").write_text(json.dumps(metrics))
    features = ["songs", "thumbs_down_per_song", "tenure_days", "level=paid"]
    pd.DataFrame(
        [
            {"model": m, "feature": f, "importance": rng.random(), "coefficient": np.nan, "rank": i + 1}
            for m in ("lr", "gbt")
            for i, f in enumerate(features)
        ]
    ).to_csv(path / "feature_importance.csv", index=False)
    active = lifetimes[lifetimes["churn"] == 0]
    probability = rng.random(len(active))
    pd.DataFrame(
        {
            "userId": active["userId"],
            "probability": probability,
            "at_risk": (probability >= 0.42).astype(int),
            "level": levels[churn == 0],
            "recency_days": rng.uniform(0, 20, len(active)).round(1),
            "top_features": "songs (low); tenure_days (low)",
        }
    ).sort_values("probability", ascending=False).to_csv(path / "at_risk_users.csv", index=False)
    (path / "decisions.json").write_text(json.dumps(fake_decisions(rng)))
    (path / "backtest.json").write_text(json.dumps(fake_backtest()))
    return path


def fake_backtest() -> dict:
    """A backtest.json with two evaluated test cutoffs and one skipped."""
    ok = {
        "status": "ok",
        "train_users": 190,
        "train_churners": 14,
        "test_users": 180,
        "test_users_note": "",
        "f1": 0.2,
        "pr_auc": 0.15,
        "lift_10": 1.8,
        "brier": 0.06,
    }
    return {
        "parameters": {"backtest_cutoffs": 3, "backtest_step_days": 7},
        "skipped": "",
        "note": "Out of time, churn-class F1 is 0.180.",
        "cutoffs": [
            {
                "test_cutoff": "2018-11-05",
                "train_cutoff": "2018-10-22",
                "train_churners": 3,
                "test_churners": 5,
                "status": "skipped: at most 3 cancellations",
            },
            {**ok, "test_cutoff": "2018-11-12", "train_cutoff": "2018-10-29", "test_churners": 11},
            {**ok, "test_cutoff": "2018-11-19", "train_cutoff": "2018-11-05", "test_churners": 12, "f1": 0.16},
        ],
        "overall": {
            "users": 360,
            "churners": 23,
            "f1": 0.18,
            "pr_auc": 0.14,
            "lift_10": 1.7,
            "brier": 0.06,
            "cutoffs": 2,
        },
        "cross_validation": {
            "label_mode": "horizon",
            "f1_mean": 0.3,
            "f1_sd": 0.05,
            "pr_auc_mean": 0.25,
            "pr_auc_sd": 0.04,
        },
    }


def fake_decisions(rng: np.random.Generator, users: int = 30) -> dict:
    """A decisions.json as the model step writes it, from random held-out scores."""
    from sparkify_utils.modeling import lift

    label = (rng.random(users) < 0.3).astype(int)
    probability = np.clip(0.3 * label + rng.random(users) * 0.7, 0, 1)
    held = pd.DataFrame(
        {"userId": [f"h{i}" for i in range(users)], "label": label, "score": probability, "probability": probability}
    ).sort_values("probability", ascending=False)
    models = {"lr": "logistic regression", "gbt": "gradient-boosted trees"}
    reliability = [
        {"model": m, "scale": scale, "predicted": p, "observed": p + 0.05, "users": 10}
        for m in models
        for scale in ("raw", "calibrated")
        for p in (0.1, 0.5, 0.9)
    ]
    calibration = [
        {
            "model": m,
            "label": name,
            "method": "platt",
            "users": users,
            "brier_raw": 0.2,
            "brier_calibrated": 0.15,
            "skill_raw": -0.1,
            "skill_calibrated": 0.1,
        }
        for m, name in models.items()
    ]
    return {
        "chosen_model": "gbt",
        "base_rate": 0.3,
        "calibration": {
            "method": "platt",
            "threshold_raw": 0.42,
            "threshold": 0.37,
            "models": calibration,
            "reliability": reliability,
        },
        "lift": {
            "shares": list(lift.TOP_SHARES),
            "labels": models,
            "models": [
                r for m in models for r in lift.lift_table(label, probability).assign(model=m).to_dict("records")
            ],
            "gains": [
                r for m in models for r in lift.gains_curve(label, probability).assign(model=m).to_dict("records")
            ],
        },
        "economics": {"parameters": {"contact_cost": 5.0, "churner_value": 60.0, "save_rate": 0.25}},
        "held_out_scores": held.to_dict("records"),
        "survival": {"available": False, "note": "skipped"},
    }


@pytest.fixture
def fake_run(tmp_path) -> Run:
    run = open_run(str(write_fake_run(tmp_path / "run-ok")))
    assert run is not None
    return run


def test_every_section_of_a_complete_run_builds(fake_run):
    for key in views.SECTIONS:
        items = build_section(fake_run, key)
        assert items, key
        for item in items:
            assert isinstance(item, (HTML, go.Figure, views.widgets.Widget)), (key, type(item))


def test_headline_cards_carry_the_summary_numbers(fake_run):
    summary = json.loads((fake_run.path / "eda_summary.json").read_text())
    cards = views.headline_cards(summary)
    assert f'data-metric="users" data-value="{summary["users"]}"' in cards
    assert f'data-metric="churners" data-value="{summary["churners"]}"' in cards
    assert f"{summary['churn_rate']:.1%}" in cards and "2018-10-01 – 2018-12-01" in cards


@pytest.fixture
def shown(monkeypatch) -> list:
    """What the dashboard displays, as (object, raw) pairs."""
    items: list = []
    monkeypatch.setattr(views, "display", lambda obj, raw=False: items.append((obj, raw)))
    return items


def _html(shown: list) -> str:
    return " ".join(obj.data for obj, _ in shown if isinstance(obj, HTML))


def test_missing_artifact_names_file_and_notebook(fake_run, shown):
    (fake_run.path / "metrics.json").unlink()
    with pytest.raises(MissingArtifact, match=r"metrics\.json.*03_model_comparison"):
        build_section(fake_run, "models")
    # The page shows a notice for it instead, and the other sections still render.
    views.show_section(fake_run, "models")
    views.show_section(fake_run, "headline")
    text = _html(shown)
    assert "spk-notice" in text and "metrics.json is missing" in text and "03_model_comparison" in text
    assert 'data-metric="users"' in text


def test_figures_are_shown_as_plotly_bundles(fake_run, shown):
    views.show_section(fake_run, "retention")
    bundles = [obj for obj, raw in shown if raw]
    assert len(bundles) == 1
    spec = bundles[0]["application/vnd.plotly.v1+json"]
    paid = int((pd.read_csv(fake_run.path / "level_churn_byUser.csv")["level"] == "paid").sum())
    named = [trace["name"] for trace in spec["data"] if trace.get("showlegend") is not False]
    assert named == ["All users (40)", f"paid ({paid})", f"free ({40 - paid})"]
    assert "log-rank" in spec["layout"]["title"]["text"]
    assert spec["layout"]["title"]["text"].startswith("Retention")


def test_missing_artifact_reports_the_failed_notebook(fake_run):
    manifest = {"notebooks": {"01_eda": {"status": "ok"}, "03_model_comparison": {"status": "failed"}}}
    (fake_run.path / "manifest.json").write_text(json.dumps(manifest))
    (fake_run.path / "at_risk_users.csv").unlink()
    run = open_run(str(fake_run.path))
    with pytest.raises(MissingArtifact, match="notebook 03_model_comparison failed in this run"):
        build_section(run, "at_risk")


def test_strict_run_fails_when_a_successful_notebook_did_not_write_its_artifact(fake_run):
    (fake_run.path / "manifest.json").write_text(json.dumps({"notebooks": {"01_eda": {"status": "ok"}}}))
    (fake_run.path / "user_lifetimes.csv").unlink()
    strict = open_run(str(fake_run.path))  # an explicit run_dir is how the runner calls the notebook
    assert strict.strict
    with pytest.raises(ArtifactError, match="reported success"):
        build_section(strict, "retention")
    with pytest.raises(ArtifactError, match="reported success"):
        views.show_section(strict, "retention")


def test_malformed_artifact_is_a_clear_error(fake_run):
    pd.DataFrame({"userId": ["1"], "score": [0.3]}).to_csv(fake_run.path / "at_risk_users.csv", index=False)
    with pytest.raises(ArtifactError, match=r"at_risk_users\.csv lacks columns \['probability', 'at_risk', 'level'"):
        build_section(fake_run, "at_risk")


def test_no_run_gives_the_command_to_make_one(monkeypatch, tmp_path):
    monkeypatch.setenv("SPARKIFY_OUTPUTS_DIR", str(tmp_path / "outputs"))
    monkeypatch.delenv(run.RUN_DIR_ENV, raising=False)
    assert open_run("") is None
    assert "JupyterLab" in run.no_run_message("") and "make dashboard" in run.no_run_message("")
    monkeypatch.setenv(run.RUN_DIR_ENV, str(paths.latest_link()))
    assert "make run" in run.no_run_message("")
    assert open_run(str(tmp_path / "nope")) is None
    assert "nope" in run.no_run_message(str(tmp_path / "nope"))
    views.show_section(None, "headline")  # nothing to show, no error


def test_header_without_run_shows_the_message(monkeypatch, tmp_path, shown):
    monkeypatch.setenv("SPARKIFY_OUTPUTS_DIR", str(tmp_path / "outputs"))
    monkeypatch.delenv(run.RUN_DIR_ENV, raising=False)
    views.show_header(None, "")
    assert "spk-no-run" in _html(shown) and "JupyterLab" in _html(shown)


def test_run_resolution_order(monkeypatch, tmp_path):
    monkeypatch.setenv("SPARKIFY_OUTPUTS_DIR", str(tmp_path / "outputs"))
    monkeypatch.delenv(run.RUN_DIR_ENV, raising=False)
    assert run.resolve_run_dir("") == paths.interactive_run_dir()
    monkeypatch.setenv(run.RUN_DIR_ENV, str(tmp_path / "from-env"))
    assert run.resolve_run_dir("") == tmp_path / "from-env"
    assert run.resolve_run_dir(str(tmp_path / "explicit")) == tmp_path / "explicit"
    (paths.runs_dir() / "20250101-000000-abcd").mkdir(parents=True)
    assert run.resolve_run_dir("20250101-000000-abcd") == paths.runs_dir() / "20250101-000000-abcd"
    assert not open_run(str(tmp_path / "from-env")) and open_run("20250101-000000-abcd").strict


def test_notebook_opened_alone_shows_the_interactive_run_not_the_last_batch(monkeypatch, tmp_path):
    """In JupyterLab, 01-03 with their stored defaults write outputs/interactive; 04 with its default must
    show that run, not outputs/latest (someone else's batch run)."""
    monkeypatch.setenv("SPARKIFY_OUTPUTS_DIR", str(tmp_path / "outputs"))
    monkeypatch.delenv(run.RUN_DIR_ENV, raising=False)
    batch = write_fake_run(paths.runs_dir() / "20250101-000000-batch", seed=1)
    paths.latest_link().symlink_to(batch)
    interactive = write_fake_run(paths.run_paths().run_dir, seed=2)
    stored_default = notebook_parameters(paths.notebook_path(artifacts.DASHBOARD))["run_dir"]
    shown_run = open_run(stored_default)
    assert shown_run is not None and shown_run.path == interactive.resolve()
    assert not shown_run.strict  # a viewer's page: missing pieces are notices, not failures


def test_dashboard_env_passes_the_run_and_rejects_a_missing_one(tmp_path, monkeypatch):
    monkeypatch.setenv(run.RUN_DIR_ENV, "stale")
    assert server.dashboard_env("")[run.RUN_DIR_ENV] == str(paths.latest_link())
    assert server.dashboard_env(str(tmp_path))[run.RUN_DIR_ENV] == str(tmp_path.resolve())
    with pytest.raises(FileNotFoundError, match="--run-dir"):
        server.dashboard_env(str(tmp_path / "missing"))
    command = server.voila_command(8123)
    assert "--Voila.ip=127.0.0.1" in command and "--Voila.port=8123" in command
    assert "--strip_sources=True" in command and command[-1] != "" and str(server.DASHBOARD_NOTEBOOK) in command


def test_kaplan_meier_matches_a_hand_computed_case():
    # Durations 1,2,2,3,4 with the second 2 and the 4 censored:
    # t=1: 5 at risk, 1 event -> 4/5 = .8; t=2: 4 at risk, 1 event (+1 censored) -> .8*3/4 = .6;
    # t=3: 2 at risk, 1 event -> .3; t=4: 1 at risk, censored -> .3.
    table = kaplan_meier(pd.Series([2, 1, 2, 3, 4]), pd.Series([1, 1, 0, 1, 0]))
    assert table["day"].tolist() == [0, 1, 2, 3, 4]
    assert table["at_risk"].tolist() == [5, 5, 4, 2, 1]
    assert np.allclose(table["survival"], [1, 0.8, 0.6, 0.3, 0.3])
    # The band holds the estimate and stays within [0, 1].
    assert (table["lower"] <= table["survival"] + 1e-12).all() and (table["survival"] <= table["upper"] + 1e-12).all()
    assert table["lower"].min() >= 0 and table["upper"].max() <= 1


def test_durations_reject_a_cancellation_before_the_first_event():
    lifetimes = pd.DataFrame(
        {"userId": ["a"], "churn": [1], "churn_ts": [START], "first_ts": [START + DAY], "last_ts": [START + DAY]}
    )
    with pytest.raises(ValueError, match="non-negative"):
        durations(lifetimes)


def test_retention_curves_censor_non_churners_at_log_end_and_compare_levels():
    lifetimes = pd.DataFrame(
        {
            "userId": ["a", "b", "c"],
            "churn": [1, 0, 1],
            "churn_ts": [START + 2 * DAY, np.nan, START + 5 * DAY],
            "first_ts": [START, START, START + DAY],
            "last_ts": [START + 2 * DAY, START + 3 * DAY, START + 6 * DAY],
        }
    )
    levels = pd.DataFrame({"userId": ["a", "b", "c"], "level": ["free", "paid", "free"], "churn": [1, 0, 1]})
    curves, test = retention_curves(lifetimes, levels)
    everyone = curves[curves["group"] == "All users (3)"]
    # a cancels on day 2, c on day 4 after first seen; b is censored at the log's end (day 6).
    assert everyone["day"].tolist() == [0, 2, 4, 6]
    assert np.allclose(everyone["survival"], [1, 2 / 3, 1 / 3, 1 / 3])
    assert curves[curves["group"] == "free (2)"]["survival"].iloc[-1] == 0
    assert set(curves["group"]) == {"All users (3)", "paid (1)", "free (2)"}
    assert test["users_a"] == 1 and test["users_b"] == 2 and 0 <= test["p_value"] <= 1


def test_churn_by_week_counts_cancellations_against_active_users():
    lifetimes = pd.DataFrame(
        {  # 2018-10-01 is a Monday
            "userId": ["a", "b", "c"],
            "churn": [1, 0, 1],
            "churn_ts": [START + 2 * DAY, np.nan, START + 9 * DAY],
            "first_ts": [START, START + DAY, START + 8 * DAY],
            "last_ts": [START + 2 * DAY, START + 10 * DAY, START + 9 * DAY],
        }
    )
    weekly = analysis.churn_by_week(lifetimes)
    assert weekly["week"].dt.strftime("%Y-%m-%d").tolist() == ["2018-10-01", "2018-10-08"]
    assert weekly["active_users"].tolist() == [2, 2]
    assert weekly["cancellations"].tolist() == [1, 1]
    assert weekly["churn_rate"].tolist() == [0.5, 0.5]


def test_filter_at_risk_by_threshold_and_level():
    table = pd.DataFrame(
        {"userId": ["1", "2", "3", "4"], "probability": [0.2, 0.9, 0.5, 0.7], "level": ["free", "paid", "paid", "free"]}
    )
    assert filter_at_risk(table, 0.5)["userId"].tolist() == ["2", "4", "3"]
    assert filter_at_risk(table, 0.5, "free")["userId"].tolist() == ["4"]
    assert filter_at_risk(table, 0.95).empty
    assert len(filter_at_risk(table, 0.0)) == 4


def test_at_risk_widget_follows_slider_and_level(fake_run):
    table = pd.read_csv(fake_run.path / "at_risk_users.csv", dtype={"userId": str})
    box = views.at_risk_widget(table, threshold=0.0)
    (slider, level), summary, body = box.children[0].children, box.children[1], box.children[2]

    def rows() -> int:
        return body.value.split("<tbody>")[1].count("<tr")

    assert rows() == len(table)
    slider.value = 0.6
    assert rows() == int((table["probability"] >= 0.6).sum()) < len(table)
    level.value = "paid"
    expected = filter_at_risk(table, 0.6, "paid")
    assert rows() == len(expected) and f'data-rows="{len(expected)}"' in summary.value
    payload = summary.value.split("base64,")[1].split('"')[0]
    downloaded = pd.read_csv(pd.io.common.BytesIO(base64.b64decode(payload)), dtype={"userId": str})
    pd.testing.assert_frame_equal(downloaded, expected)


def test_at_risk_table_hides_empty_columns_and_handles_nobody_scored():
    table = pd.DataFrame({"userId": ["1"], "probability": [0.7], "level": ["paid"], "recency_days": [np.nan]})
    assert "days since last activity" not in views.at_risk_widget(table).children[2].value
    empty = views.at_risk_widget(table.iloc[:0])
    assert 'data-rows="0"' in empty.children[1].value and "<th>user</th>" in empty.children[2].value


def test_model_scores_and_table_come_from_metrics(fake_run):
    metrics = json.loads((fake_run.path / "metrics.json").read_text())
    scores = analysis.model_scores(metrics)
    assert len(scores) == len(metrics["models"]) * len(analysis.SHOWN_METRICS)
    gbt = scores[scores["model"] == "gradient-boosted trees"].set_index("metric")
    assert gbt.at["PR-AUC", "mean"] == metrics["models"]["gbt"]["cv"]["pr_auc"]["mean"]
    assert gbt.at["ROC-AUC", "sd"] == metrics["models"]["gbt"]["cv"]["roc_auc"]["sd"]
    table = views.model_table(metrics)
    assert table.count("<tr") == len(metrics["models"]) + 1 and "vs lr: within the spread" in table
    assert f"{metrics['models']['gbt']['test']['f1']:.3f}" in table


def test_importance_shows_the_chosen_model(fake_run):
    importance = pd.read_csv(fake_run.path / "feature_importance.csv")
    metrics = json.loads((fake_run.path / "metrics.json").read_text())
    label, rows = analysis.chosen_importance(importance, metrics)
    assert label == "gradient-boosted trees" and set(rows["model"]) == {"gbt"}
    with pytest.raises(ArtifactError, match="no rows for the chosen model 'rf'"):
        analysis.chosen_importance(importance, {**metrics, "chosen_model": "rf"})


def test_slider_starts_at_the_model_threshold(fake_run):
    # On the calibrated scale of the at-risk list's probabilities when the run calibrated them.
    assert views.model_threshold(fake_run) == 0.37
    (fake_run.path / "decisions.json").unlink()
    assert views.model_threshold(fake_run) == 0.42
    (fake_run.path / "metrics.json").unlink()
    assert views.model_threshold(fake_run) == views.DEFAULT_THRESHOLD
    # Without metrics.json the at-risk list still shows; the model sections say what is missing.
    assert build_section(fake_run, "at_risk")


def test_dashboard_never_imports_pyspark():
    code = (
        "import sys, sparkify_utils.report.views, sparkify_utils.report.server; "
        "print(sorted(m for m in sys.modules if m.startswith('pyspark')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", f"the dashboard must render without Spark: {result.stdout}"


def test_campaign_is_recomputed_from_stored_scores(fake_run):
    decisions = json.loads((fake_run.path / "decisions.json").read_text())
    scored = pd.read_csv(fake_run.path / "at_risk_users.csv", dtype={"userId": str})
    plan = analysis.campaign(decisions, scored, contact_cost=5.0, churner_value=60.0, save_rate=0.25)
    # Contacting pays while 60 x 0.25 x p > 5, i.e. for every user with p > 1/3.
    assert plan["best"]["k"] == int((scored["probability"] > 1 / 3).sum())
    assert plan["contacted"]["userId"].tolist() == scored.nlargest(plan["best"]["k"], "probability")["userId"].tolist()
    held = pd.DataFrame(decisions["held_out_scores"])
    assert plan["held_out"]["k"] == int((held["probability"] > 1 / 3).sum())
    contacted = held.nlargest(plan["held_out"]["k"], "probability")
    assert plan["held_out"]["realised_profit"] == pytest.approx(15 * contacted["label"].sum() - 5 * len(contacted))
    # Dearer contacts: fewer users worth it.
    assert analysis.campaign(decisions, scored, 10.0, 60.0, 0.25)["best"]["k"] < plan["best"]["k"]
    with pytest.raises(EconomicsError, match="contact_cost"):
        analysis.campaign(decisions, scored, 0.0, 60.0, 0.25)


def test_campaign_widget_follows_its_sliders(fake_run):
    decisions = json.loads((fake_run.path / "decisions.json").read_text())
    scored = pd.read_csv(fake_run.path / "at_risk_users.csv", dtype={"userId": str})
    box = decision_views.campaign_widget(decisions, scored)
    (cost, value, save), summary, _, body = box.children[0].children, *box.children[1:]
    assert (cost.value, value.value, save.value) == (5.0, 60.0, 0.25)
    assert "<svg" in box.children[2].value and "best k = " in box.children[2].value

    def shown_k() -> int:
        return int(summary.value.split('data-k="')[1].split('"')[0])

    assert shown_k() == int((scored["probability"] > 1 / 3).sum())
    save.value = 1.0  # every contacted churner kept: worth contacting above p = 5 / 60
    k = int((scored["probability"] > 5 / 60).sum())
    assert shown_k() == k and body.value.split("<tbody>")[1].count("<tr") == min(k, views.MAX_TABLE_ROWS)
    payload = summary.value.split("base64,")[1].split('"')[0]
    downloaded = pd.read_csv(pd.io.common.BytesIO(base64.b64decode(payload)), dtype={"userId": str})
    assert downloaded["userId"].tolist() == scored.nlargest(k, "probability")["userId"].tolist()
    assert "main reasons" in body.value and "top_features" in downloaded.columns
    save.value = 0.0  # nobody saved: nobody worth contacting
    assert shown_k() == 0 and "no scored user is worth contacting" in summary.value


def test_decision_sections_show_the_stored_figures(fake_run):
    gains = build_section(fake_run, "gains")
    assert isinstance(gains[0], go.Figure) and "spk-lift" in gains[1].data
    reliability = build_section(fake_run, "reliability")
    assert isinstance(reliability[0], go.Figure) and "Brier calibrated" in reliability[1].data
    # Raw curves of every model and the chosen model's calibrated one, plus the diagonal.
    assert len(reliability[0].data) == 1 + 2 + 1


def test_backtest_section_shows_cutoffs_next_to_cv_or_why_it_was_skipped(fake_run):
    figure, note, table = build_section(fake_run, "backtest")
    assert isinstance(figure, go.Figure) and list(figure.data[0].x) == ["2018-11-12", "2018-11-19"]
    assert "Out of time" in note.data
    assert table.data.count("<tr") == 1 + 3 + 2  # header, three cutoffs, pooled, CV
    assert "skipped: at most 3 cancellations" in table.data and "0.300 ± 0.050" in table.data
    reason = "The backtest is skipped: a table of your own."
    skipped = {
        **fake_backtest(),
        "skipped": reason,
        "note": reason,
        "cutoffs": [],
        "overall": {},
        "cross_validation": {},
    }
    (fake_run.path / "backtest.json").write_text(json.dumps(skipped))
    items = build_section(fake_run, "backtest")
    assert len(items) == 1 and "a table of your own" in items[0].data and "spk-notice" not in items[0].data
