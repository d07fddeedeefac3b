"""The steps of a run and every file a run writes, declared once.

A run executes :data:`STEPS` in order (the runner's sequence; nothing else in the library names a
notebook). Each :class:`Artifact` says where it lives (``run``: the always-local run directory,
written by the driver; ``spark``: ``spark_dir``, written by Spark and possibly on object storage),
its format, the step that writes it, the steps that read it, and the columns (or top-level JSON
keys) its readers rely on. Steps, the dashboard and the tests all name files through this module.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The steps of a run, in execution order; each is the notebook ``notebooks/<step>.ipynb``.
EDA, FEATURES, MODELS, DASHBOARD = "01_eda", "02_features", "03_model_comparison", "04_dashboard"
STEPS = (EDA, FEATURES, MODELS, DASHBOARD)
#: Written by the runner itself, not by a step.
RUNNER = "runner"
#: Columns of the users table (the churn label and each user's lifetime, epoch ms).
USER_COLUMNS = ("userId", "churn", "churn_ts", "first_ts", "last_ts")


@dataclass(frozen=True)
class Artifact:
    """One file (or dataset directory) of a run."""

    name: str
    store: str
    fmt: str
    writer: str
    readers: tuple[str, ...]
    description: str
    columns: tuple[str, ...] = ()
    #: Written only under some parameters (e.g. the quarantine only with ``bad_row_policy=quarantine``).
    optional: bool = False


def _a(
    name: str,
    store: str,
    fmt: str,
    writer: str,
    readers: tuple[str, ...],
    description: str,
    columns: tuple[str, ...] = (),
    optional: bool = False,
) -> Artifact:
    return Artifact(name, store, fmt, writer, readers, description, columns, optional)


MANIFEST = _a(
    "manifest.json",
    "run",
    "json",
    RUNNER,
    (DASHBOARD,),
    "parameters, versions, input fingerprint, timings and status of the run",
    ("run_id", "status", "parameters", "notebooks"),
)
EXECUTED = _a("notebooks", "run", "ipynb", RUNNER, (), "the executed notebooks, one per step")
SPARK_LOGS = _a(
    "logs",
    "run",
    "log",
    RUNNER,
    (),
    "the log of the run's own Spark Connect server (a local master): the driver's side of a failed cell",
    optional=True,
)
FIGURES = _a("figures", "run", "html+json", EDA, (), "every chart as offline HTML and plotly JSON (all steps)")

DATA_QUALITY = _a(
    "data_quality.json",
    "run",
    "json",
    EDA,
    (DASHBOARD,),
    "every row read: kept, excluded or quarantined, by reason",
    ("rows_read", "rows_kept", "anonymous_rows", "rows_excluded", "rows_quarantined", "bad_row_policy", "files_read"),
)
EVENTS = _a(
    "events.parquet",
    "spark",
    "parquet",
    EDA,
    (FEATURES, MODELS),
    "clean events (the clean-events contract)",
    ("userId", "sessionId", "ts", "page", "level"),
)
QUARANTINE = _a(
    "quarantine", "spark", "jsonl", EDA, (), "rejected rows with their reason", ("reason", "raw"), optional=True
)
USERS = _a(
    "users.parquet",
    "spark",
    "parquet",
    EDA,
    (FEATURES, MODELS),
    "one row per user: the churn label and lifetime",
    USER_COLUMNS,
)
LEVEL_CHURN = _a(
    "level_churn_byUser.csv",
    "run",
    "csv",
    EDA,
    (DASHBOARD,),
    "each user's level at the last event and churn group",
    ("userId", "churn", "level"),
)
PAGE_CHURN = _a(
    "page_churn_byUser.csv",
    "run",
    "csv",
    EDA,
    (DASHBOARD,),
    "page visits per churn group, with per-user rates per 100 songs",
    ("page", "churn", "count", "page_total", "share", "users", "mean_per_100_songs", "median_per_100_songs"),
)
SONGS_PER_USER = _a(
    "numofsongs_byUser.csv", "run", "csv", EDA, (DASHBOARD,), "songs played per user", ("userId", "churn", "songs")
)
USER_LIFETIMES = _a(
    "user_lifetimes.csv",
    "run",
    "csv",
    EDA,
    (MODELS, DASHBOARD),
    "the users table as CSV (retention and churn over time)",
    USER_COLUMNS,
)
EDA_SUMMARY = _a(
    "eda_summary.json",
    "run",
    "json",
    EDA,
    (DASHBOARD,),
    "headline numbers of the EDA",
    (
        "users",
        "churners",
        "churn_rate",
        "first_event",
        "last_event",
        "days",
        "events",
        "songs",
        "chi2_statistic",
        "chi2_p_value",
        "chi2_note",
    ),
)

FEATURE_TABLE = _a(
    "features.parquet",
    "spark",
    "parquet",
    FEATURES,
    (MODELS,),
    "training table: one row per user, the label and the model features",
    ("userId", "churn"),
)
SCORING_TABLE = _a(
    "scoring.parquet",
    "spark",
    "parquet",
    FEATURES,
    (MODELS,),
    "users to score now, with the training table's feature columns",
    ("userId",),
)
FEATURE_DICTIONARY = _a(
    "feature_dictionary.csv",
    "run",
    "csv",
    FEATURES,
    (),
    "meaning and kind of every feature column",
    ("feature", "description", "kind"),
)
USER_ITEM = _a(
    "user_item.csv", "run", "csv", FEATURES, (), "the original project's per-user page-count table", ("userId", "churn")
)
FEATURES_SUMMARY = _a(
    "features_summary.json",
    "run",
    "json",
    FEATURES,
    (MODELS,),
    "label mode, window, class balance and univariate AUCs",
    ("label_mode", "users", "churners"),
)

MODEL_METRICS = _a(
    "metrics.json",
    "run",
    "json",
    MODELS,
    (DASHBOARD,),
    "model comparison: CV mean and sd, held-out scores, verdict, chosen model",
    ("chosen_model", "models", "verdict"),
)
PREDICTIONS = _a(
    "predictions.csv",
    "run",
    "csv",
    MODELS,
    (),
    "held-out users' probabilities and predictions of every model",
    ("userId", "label", "probability", "prediction", "model"),
)
FEATURE_IMPORTANCE = _a(
    "feature_importance.csv",
    "run",
    "csv",
    MODELS,
    (DASHBOARD,),
    "importance of every feature in every model",
    ("model", "feature", "importance"),
)
AT_RISK = _a(
    "at_risk_users.csv",
    "run",
    "csv",
    MODELS,
    (DASHBOARD,),
    "active users scored by the chosen model, riskiest first, with their main reasons",
    ("userId", "probability", "at_risk", "level", "recency_days", "top_features"),
)
DECISIONS = _a(
    "decisions.json",
    "run",
    "json",
    MODELS,
    (DASHBOARD,),
    "decision evaluation: calibration and reliability, lift and gains, campaign economics and profit "
    "curves, held-out scores, time to churn (Kaplan-Meier, log-rank, Cox); every figure's data",
    ("chosen_model", "calibration", "lift", "economics", "held_out_scores", "survival"),
)
BACKTEST = _a(
    "backtest.json",
    "run",
    "json",
    MODELS,
    (DASHBOARD,),
    "out-of-time backtest of the chosen model: per test cutoff and pooled F1, PR-AUC, lift at 10 %, Brier, "
    "next to the random-split CV figure (or why it was skipped)",
    ("parameters", "skipped", "note", "cutoffs", "overall", "cross_validation"),
)
SAVED_MODELS = _a(
    "models",
    "spark",
    "model",
    MODELS,
    (),
    "every fitted model, one directory per model: a Spark ML PipelineModel, or a scikit-learn "
    "model as a skops file (written by the driver: in the run directory when spark_dir is a URL)",
)

#: Every artifact, in the order the steps write them.
ARTIFACTS: tuple[Artifact, ...] = (
    MANIFEST,
    EXECUTED,
    SPARK_LOGS,
    FIGURES,
    DATA_QUALITY,
    EVENTS,
    QUARANTINE,
    USERS,
    LEVEL_CHURN,
    PAGE_CHURN,
    SONGS_PER_USER,
    USER_LIFETIMES,
    EDA_SUMMARY,
    FEATURE_TABLE,
    SCORING_TABLE,
    FEATURE_DICTIONARY,
    USER_ITEM,
    FEATURES_SUMMARY,
    MODEL_METRICS,
    PREDICTIONS,
    FEATURE_IMPORTANCE,
    AT_RISK,
    DECISIONS,
    BACKTEST,
    SAVED_MODELS,
)
BY_NAME = {artifact.name: artifact for artifact in ARTIFACTS}


def written_by(step: str) -> tuple[Artifact, ...]:
    """The artifacts ``step`` writes (the runner's own, for :data:`RUNNER`)."""
    return tuple(a for a in ARTIFACTS if a.writer == step)


def expected(steps: tuple[str, ...] = STEPS) -> tuple[Artifact, ...]:
    """The artifacts a successful run of ``steps`` must hold (the runner's plus each step's, optional ones aside)."""
    return tuple(a for a in ARTIFACTS if (a.writer == RUNNER or a.writer in steps) and not a.optional)
