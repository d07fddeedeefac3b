"""Does a generated log look like the real Sparkify mini log? Figures next to targets, with pass/fail.

Everything is computed with Spark from the events (one aggregation to a per-user table); only that
per-user table reaches the driver. The targets are the published facts of the real mini log
(``shared/reference/sparkify_facts.md``), scaled by the number of users where they are counts.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

import pandas as pd
from pyspark.ml.classification import RandomForestClassifier
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import VectorAssembler
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from sparkify_utils.data.read import RAW_SCHEMA
from sparkify_utils.data.schema import CANCEL_PAGES, CHURN_PAGE, PAGES, SONG_PAGE

#: Page shares (%) of the real mini log.
REAL_PAGE_SHARE = {
    "NextSong": 79.62,
    "Home": 5.05,
    "Thumbs Up": 4.38,
    "Add to Playlist": 2.28,
    "Add Friend": 1.49,
    "Roll Advert": 1.37,
    "Login": 1.13,
    "Logout": 1.13,
    "Thumbs Down": 0.89,
    "Downgrade": 0.72,
    "Help": 0.60,
    "Settings": 0.53,
    "About": 0.32,
    "Upgrade": 0.17,
    "Save Settings": 0.11,
    "Error": 0.09,
    "Submit Upgrade": 0.055,
    "Submit Downgrade": 0.022,
    "Cancel": 0.018,
    "Cancellation Confirmation": 0.018,
    "Register": 0.006,
    "Submit Registration": 0.002,
}
#: Real mini log: 286,500 rows for 225 users over 63 days.
REAL_ROWS_PER_USER = 286_500 / 225
ROWS_TOLERANCE = 0.25
PAGE_SHARE_TOLERANCE = 0.30
#: Pages whose share is checked (the rest only need to be present).
CHECKED_PAGE_SHARE = 0.5
CHURN_RANGE = (19.0, 27.0)
ANONYMOUS_RANGE = (2.0, 4.0)
PAID_RANGE = (70.0, 88.0)
SONGS_RATIO_RANGE = (0.45, 0.80)
PER_SONG_RATIO_MIN = 1.3
MEDIAN_OVER_MEAN_MAX = 0.85
MAX_OVER_MEDIAN_MIN = 5.0
AUC_RANGE = (0.60, 0.85)
LENGTH_MEAN, LENGTH_SD, LENGTH_TOLERANCE = 249.1, 99.2, 0.10


@dataclass(frozen=True)
class CalibrationRow:
    """One calibration figure: its value and target as text, and whether it meets the target."""

    check: str
    value: str
    target: str
    passed: bool


def _column(page: str) -> str:
    return "n_" + page.replace(" ", "_")


def per_user_counts(events: DataFrame) -> DataFrame:
    """One row per userId ("" gathers the logged-out/guest rows): rows, paid rows, song-length sums, pages."""
    is_paid = (F.col("level") == "paid").cast("long")
    aggs = [
        F.count(F.lit(1)).alias("rows"),
        F.sum(is_paid).alias("paid_rows"),
        F.count("length").alias("length_n"),
        F.sum("length").alias("length_sum"),
        F.sum(F.col("length") * F.col("length")).alias("length_sq"),
    ]
    aggs += [F.sum((F.col("page") == page).cast("long")).alias(_column(page)) for page in PAGES]
    return events.groupBy("userId").agg(*aggs)


def rf_cv_auc(users: DataFrame, folds: int = 5, repeats: int = 5, seed: int = 42) -> list[float]:
    """ROC-AUC of each fold of repeated stratified CV of a default random forest on per-user page counts.

    ``users`` is the per-user table of ``per_user_counts`` without the anonymous row; the label is
    having a Cancellation Confirmation, and the Cancel pages are left out of the features.
    """
    features = [_column(p) for p in PAGES if p not in CANCEL_PAGES]
    data = (
        VectorAssembler(inputCols=features, outputCol="features")
        .transform(users.withColumn("label", (F.col(_column(CHURN_PAGE)) > 0).cast("double")))
        .select("label", "features")
        .cache()
    )
    evaluator = BinaryClassificationEvaluator(metricName="areaUnderROC")
    aucs = []
    for repeat in range(repeats):
        # Stratified folds: number the users of each class in a random order, deal them round-robin.
        order = Window.partitionBy("label").orderBy(F.rand(seed + repeat))
        dealt = data.withColumn("fold", F.row_number().over(order) % folds).cache()
        for fold in range(folds):
            model = RandomForestClassifier(seed=seed + repeat).fit(dealt.where(F.col("fold") != fold))
            aucs.append(evaluator.evaluate(model.transform(dealt.where(F.col("fold") == fold))))
        dealt.unpersist()
    data.unpersist()
    return aucs


def _within(value: float, low: float, high: float) -> bool:
    return low <= value <= high


def _ratio_of_medians(table: pd.DataFrame, column: pd.Series) -> float:
    churned = table["churn"]
    return float(column[churned].median() / column[~churned].median())


def _report(counts: pd.DataFrame, aucs: list[float]) -> list[CalibrationRow]:
    anonymous = counts[counts["userId"] == ""]
    users = counts[counts["userId"] != ""].copy()
    n_users = len(users)
    total = int(counts["rows"].sum())
    rows: list[CalibrationRow] = []

    expected = REAL_ROWS_PER_USER * n_users
    rows.append(
        CalibrationRow(
            "rows",
            f"{total:,}",
            f"{expected:,.0f} ±{ROWS_TOLERANCE:.0%} ({REAL_ROWS_PER_USER:,.0f}/user)",
            abs(total / expected - 1) <= ROWS_TOLERANCE,
        )
    )
    users["churn"] = users[_column(CHURN_PAGE)] > 0
    churn = 100 * users["churn"].mean()
    rows.append(
        CalibrationRow(
            "churners % of users",
            f"{churn:.1f} ({users['churn'].sum()}/{n_users})",
            f"{CHURN_RANGE[0]:g}–{CHURN_RANGE[1]:g} (real 23.1)",
            _within(churn, *CHURN_RANGE),
        )
    )
    for page, real in REAL_PAGE_SHARE.items():
        share = 100 * counts[_column(page)].sum() / total
        if real > CHECKED_PAGE_SHARE:
            rows.append(
                CalibrationRow(
                    f"page % {page}",
                    f"{share:.2f}",
                    f"{real:.2f} ±{PAGE_SHARE_TOLERANCE:.0%}",
                    abs(share / real - 1) <= PAGE_SHARE_TOLERANCE,
                )
            )
    missing = [p for p in PAGES if counts[_column(p)].sum() == 0]
    present = f"{len(PAGES) - len(missing)}" + (f" (no {', '.join(missing)})" if missing else "")
    rows.append(CalibrationRow("pages present", present, f"{len(PAGES)}", not missing))
    anon = 100 * float(anonymous["rows"].sum()) / total
    rows.append(
        CalibrationRow(
            "rows with empty userId %",
            f"{anon:.2f}",
            f"{ANONYMOUS_RANGE[0]:g}–{ANONYMOUS_RANGE[1]:g} (real 2.91)",
            _within(anon, *ANONYMOUS_RANGE),
        )
    )
    paid = 100 * float(counts["paid_rows"].sum()) / total
    rows.append(
        CalibrationRow(
            "paid rows %", f"{paid:.1f}", f"{PAID_RANGE[0]:g}–{PAID_RANGE[1]:g} (real 79.6)", _within(paid, *PAID_RANGE)
        )
    )
    events = users["rows"]
    median, mean, top = float(events.median()), float(events.mean()), float(events.max())
    rows.append(
        CalibrationRow(
            "events/user median ÷ mean",
            f"{median / mean:.2f} ({median:,.0f} / {mean:,.0f})",
            f"≤ {MEDIAN_OVER_MEAN_MAX} (real 0.69)",
            median / mean <= MEDIAN_OVER_MEAN_MAX,
        )
    )
    rows.append(
        CalibrationRow(
            "events/user max ÷ median",
            f"{top / median:.1f} ({top:,.0f})",
            f"> {MAX_OVER_MEDIAN_MIN:g} (real 11.4)",
            top / median > MAX_OVER_MEDIAN_MIN,
        )
    )
    songs = users[_column(SONG_PAGE)]
    ratio = _ratio_of_medians(users, songs)
    rows.append(
        CalibrationRow(
            "songs churn ÷ non-churn (medians)",
            f"{ratio:.2f}",
            f"{SONGS_RATIO_RANGE[0]:g}–{SONGS_RATIO_RANGE[1]:g} (real 0.61)",
            _within(ratio, *SONGS_RATIO_RANGE),
        )
    )
    for page, real in (("Roll Advert", 2.34), ("Thumbs Down", 1.49)):
        ratio = _ratio_of_medians(users, users[_column(page)] / songs.clip(lower=1))
        rows.append(
            CalibrationRow(
                f"{page} per song churn ÷ non-churn",
                f"{ratio:.2f}",
                f"≥ {PER_SONG_RATIO_MIN} (real {real})",
                ratio >= PER_SONG_RATIO_MIN,
            )
        )
    mean_auc = sum(aucs) / len(aucs)
    sd_auc = (sum((a - mean_auc) ** 2 for a in aucs) / max(len(aucs) - 1, 1)) ** 0.5
    rows.append(
        CalibrationRow(
            f"RF ROC-AUC ({len(aucs)} CV folds)",
            f"{mean_auc:.3f} ± {sd_auc:.3f}",
            f"{AUC_RANGE[0]:g}–{AUC_RANGE[1]:g} (real ≈0.65)",
            _within(mean_auc, *AUC_RANGE),
        )
    )
    n, s, sq = (float(counts[c].sum()) for c in ("length_n", "length_sum", "length_sq"))
    length_mean = s / n
    length_sd = ((sq - n * length_mean**2) / (n - 1)) ** 0.5
    rows.append(
        CalibrationRow(
            "song length mean / sd (s)",
            f"{length_mean:.1f} / {length_sd:.1f}",
            f"{LENGTH_MEAN} / {LENGTH_SD} ±{LENGTH_TOLERANCE:.0%}",
            abs(length_mean / LENGTH_MEAN - 1) <= LENGTH_TOLERANCE
            and abs(length_sd / LENGTH_SD - 1) <= LENGTH_TOLERANCE,
        )
    )
    return rows


def calibration_report(
    path: str | None = None,
    spark: SparkSession | None = None,
    users: int = 225,
    seed: int = 42,
    folds: int = 5,
    repeats: int = 5,
) -> list[CalibrationRow]:
    """Calibration figures of the log at ``path`` (JSON file, .json.gz or directory).

    Without ``path`` a log of ``users`` users is generated with ``seed`` into a temporary directory.
    ``folds`` × ``repeats`` is the repeated stratified CV of the random-forest AUC check.
    """
    with tempfile.TemporaryDirectory(prefix="sparkify-calibrate-") as tmp:
        if path is None:
            from sparkify_utils.synth.generate import generate_log

            # Fork worker processes only while no JVM gateway thread runs in this process.
            path = generate_log(f"{tmp}/events.json", users=users, seed=seed, workers=0 if spark is None else 1).path
        if spark is None:
            from sparkify_utils.runtime.session import get_spark

            spark = get_spark()
        counts = per_user_counts(spark.read.schema(RAW_SCHEMA).json(str(path))).cache()
        table = counts.toPandas()
        aucs = rf_cv_auc(counts.where(F.col("userId") != ""), folds=folds, repeats=repeats, seed=seed)
        counts.unpersist()
    return _report(table, aucs)


def format_report(rows: list[CalibrationRow]) -> str:
    """The calibration rows as an aligned text table, with a final pass count."""
    header = ("check", "value", "target", "ok")
    lines = [header] + [(r.check, r.value, r.target, "pass" if r.passed else "FAIL") for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(3)]
    text = [
        "  ".join(cell.ljust(w) for cell, w in zip(line[:3], widths, strict=True)) + "  " + line[3] for line in lines
    ]
    passed = sum(r.passed for r in rows)
    text.append(f"{passed}/{len(rows)} checks pass")
    return "\n".join(text)
