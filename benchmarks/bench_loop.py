"""The analysis loop on a ~1 GB log: the original project's script, the bare Spark floor, and ours.

Generates (once; cached as ``data/bench/sparkify_<users>u_seed<seed>.json``) a synthetic log of
about 1 GB (1,800 users: ~2.1 M events) with the project's generator, then times in one SparkSession
(``local[2]``, the project's settings; start-up not timed, one untimed warm-up on the test fixture):

  reference  the original Sparkify project's processing, re-implemented: ``spark.read.json`` with schema
             inference, rows without userId/sessionId (or with an empty userId) dropped, the churned
             user ids collected to the driver, then the level x churn, page x churn, songs-per-user and
             per-user tables written (CSV and Parquet); like the original, nothing is cached, so every
             table parses the JSON again
  floor      ``spark.read.schema(RAW_SCHEMA).json(log).write.parquet(tmp)``: the least any load can cost
  ingest     notebook 01's load step alone (``ingest_events``: validation, accounting, clean Parquet)
  01+02      notebooks 01 and 02's Spark work, as the notebooks call it: the load, the users table and
             every EDA table and export of 01, the feature tables of 02 (both label modes); figures and
             the driver-side statistics on the per-user tables are left out

Repeats alternate the order (reference, floor, 01+02, then the reverse), so a busy machine or a warm
page cache favours no step. Each ratio is taken within a round, whose steps ran back to back, and the
median over the rounds is reported: on a shared machine whose speed drifts by tens of percent within
minutes, a ratio of two best times from different rounds can pair a fast spell with a slow one. Targets:
reference / (01+02) at least 3, ingest / floor at most 1.5.

    .venv/bin/python benchmarks/bench_loop.py [--users 1800] [--repeats 3] [--master local[2]]
        [--runner]   also time `sparkify run --only 01_eda 02_features` on the log (after the session stops)
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from sparkify_utils import paths as project
from sparkify_utils.data import explore
from sparkify_utils.data.ingest import ingest_events
from sparkify_utils.data.label import read_users, write_users
from sparkify_utils.data.read import RAW_SCHEMA, read_clean_events
from sparkify_utils.features.build import build_tables, write_outputs
from sparkify_utils.features.univariate import class_balance
from sparkify_utils.features.window import resolve_window
from sparkify_utils.runtime.session import get_spark
from sparkify_utils.synth.generate import generate_log

TARGET_SPEEDUP = 3.0  # reference / (01+02), at least
TARGET_LOAD = 1.5  # ingest / floor, at most
FIXTURE = project.PROJECT_ROOT / "tests" / "fixtures" / "basic.json"


def bench_log(users: int, seed: int) -> Path:
    """The benchmark log, generated once into the data directory (git-ignored) and reused."""
    path = project.data_dir() / "bench" / f"sparkify_{users}u_seed{seed}.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        summary = generate_log(path, users=users, seed=seed)
        print(f"generated {path}: {summary.rows:,} events, {summary.bytes / 1e6:,.0f} MB in {summary.seconds:.0f} s")
    return path


def reference(spark: SparkSession, log: Path, out: Path) -> None:
    """The original project's processing script: inferred schema, churners collected, four tables written."""
    df = spark.read.json(str(log))
    df = df.dropna(how="any", subset=["userId", "sessionId"]).filter(F.col("userId") != "")
    churned = [
        r["userId"]
        for r in df.filter(F.col("page") == "Cancellation Confirmation").select("userId").distinct().collect()
    ]
    df = df.withColumn("churn", F.when(F.col("userId").isin(churned), 1).otherwise(0))
    level = df.select("userId", "level", "churn").dropDuplicates().groupBy("level", "churn").count()
    level.toPandas().to_csv(out / "level_churn_byUser.csv", index=False)
    df.groupBy("page", "churn").count().toPandas().to_csv(out / "page_churn_byUser.csv", index=False)
    songs = df.filter(F.col("page") == "NextSong").groupBy("userId", "churn").count()
    songs.toPandas().to_csv(out / "numofsongs_byUser.csv", index=False)
    per_user = df.groupBy("userId", "churn").agg(
        F.count(F.lit(1)).alias("events"),
        F.sum((F.col("page") == "NextSong").cast("int")).alias("songs"),
        F.countDistinct("sessionId").alias("sessions"),
        F.sum((F.col("page") == "Thumbs Up").cast("int")).alias("thumbs_up"),
        F.sum((F.col("page") == "Thumbs Down").cast("int")).alias("thumbs_down"),
        F.sum((F.col("page") == "Add Friend").cast("int")).alias("friends"),
        F.sum((F.col("page") == "Roll Advert").cast("int")).alias("adverts"),
        ((F.max("ts") - F.min("ts")) / 86_400_000).alias("days"),
    )
    per_user.write.mode("overwrite").parquet(str(out / "per_user.parquet"))


def floor(spark: SparkSession, log: Path, out: Path) -> None:
    """The bare load: parse with the explicit schema, write Parquet."""
    spark.read.schema(RAW_SCHEMA).json(str(log)).write.mode("overwrite").parquet(str(out / "floor.parquet"))


def ours(spark: SparkSession, log: Path, out: Path, seconds: dict[str, float]) -> None:
    """Notebooks 01 and 02's Spark work, as they call the package; ``seconds['ingest']`` is the load step."""
    paths = project.run_paths(str(out / "run"))
    began = time.perf_counter()
    loaded = ingest_events(spark, str(log), paths)
    seconds["ingest"] = time.perf_counter() - began
    quality = loaded.quality
    # 01_eda
    users = write_users(loaded.events, paths)
    cube = explore.activity_cube(loaded.events)
    profiles = explore.user_profiles(cube, users).persist()
    per_user = explore.per_user_table(profiles)
    counts = explore.churn_counts(users)
    medians = explore.group_medians(profiles)
    level = explore.level_contingency(profiles)
    test = explore.chi_square(level)
    pages = explore.page_churn(profiles)
    explore.page_rate_contrast(pages)
    explore.daily_activity(cube, users)
    explore.time_patterns(cube, users)
    explore.churn_timing(users)
    summary = explore.eda_summary(cube, counts, level, test, medians, quality)
    explore.write_exports(paths, per_user, pages, summary)
    profiles.unpersist()
    cube.unpersist()
    seconds["01"] = time.perf_counter() - began
    # 02_features (default label mode, then the other one for the class balance)
    events, users = read_clean_events(spark, paths), read_users(spark, paths)
    resolve_window(users, "whole_period", "", 14, 28)
    tables = build_tables(events, users, "whole_period")
    class_balance(tables.other)
    written = write_outputs(paths, tables, "whole_period")
    spark.read.parquet(written["features"]).toPandas()
    spark.read.parquet(written["scoring"]).count()
    seconds["01+02"] = time.perf_counter() - began


def timed(step: Callable[[], None]) -> float:
    began = time.perf_counter()
    step()
    return time.perf_counter() - began


def run_notebooks(log: Path, master: str) -> float:
    """Wall time of `sparkify run --only 01_eda 02_features` on ``log`` (its own Spark; ours is stopped)."""
    command = [
        sys.executable,
        "-m",
        "sparkify_utils",
        "run",
        "--only",
        "01_eda",
        "02_features",
        "--force",
        "-p",
        f"input_path={log}",
        "-p",
        f"spark_master={master}",
    ]
    began = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv: list[str] | None = None) -> int:
    """Generate or reuse the log, time the steps in alternating order, print the table and the targets."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1800, help="log size in users (1,800: ~1 GB)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeats", type=int, default=3, help="rounds, alternating the order of the steps")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="2g")
    parser.add_argument("--runner", action="store_true", help="also time the two notebooks with the runner")
    args = parser.parse_args(argv)
    print(__doc__)
    log = bench_log(args.users, args.seed)
    print(f"log: {log} ({log.stat().st_size / 1e6:,.0f} MB)")

    spark = get_spark(
        args.master, driver_memory=args.driver_memory, app_name="bench-loop", spark_conf={"spark.ui.enabled": "false"}
    )
    print(f"Spark {spark.version} {args.master}, driver memory {args.driver_memory}\n")
    rows = []
    with contextlib.ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-loop-", dir=log.parent)))
        warm = root / "warm-up"
        warm.mkdir()
        floor(spark, FIXTURE, warm)  # untimed: JIT, class loading
        ours(spark, FIXTURE, warm, {})
        for repeat in range(args.repeats):
            order = ["reference", "floor", "01+02"]
            seconds: dict[str, float] = {}
            for name in order if repeat % 2 == 0 else order[::-1]:
                out = root / f"{name}-{repeat}"
                out.mkdir()
                if name == "reference":
                    seconds[name] = timed(lambda out=out: reference(spark, log, out))
                elif name == "floor":
                    seconds[name] = timed(lambda out=out: floor(spark, log, out))
                else:
                    ours(spark, log, out, seconds)
                shutil.rmtree(out, ignore_errors=True)
                print(f"  round {repeat + 1}: {name} {seconds[name]:.1f} s", flush=True)
            rows.append({"round": repeat + 1, **seconds})
        spark.stop()

    table = pd.DataFrame(rows)[["round", "reference", "floor", "ingest", "01", "01+02"]]
    table["reference / (01+02)"] = table["reference"] / table["01+02"]
    table["ingest / floor"] = table["ingest"] / table["floor"]
    # What reference / (01+02) would be if 01+02 cost no more than the bare load: the ceiling of any Spark load.
    table["reference / floor"] = table["reference"] / table["floor"]
    ratios = ["reference / (01+02)", "ingest / floor", "reference / floor"]
    best = table.drop(columns=["round", *ratios]).min()
    speedup, load = table["reference / (01+02)"].median(), table["ingest / floor"].median()
    runner = run_notebooks(log, args.master) if args.runner else None
    print("\nSeconds per round (reference = the original script; 01 includes ingest, 01+02 includes 01), and the")
    print("round's ratios")
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    print("\nBest time of each step over the rounds:")
    print(best.to_frame("seconds").T.to_string(index=False, float_format=lambda v: f"{v:,.1f}"))
    if runner is not None:
        print(f"\n`sparkify run --only 01_eda 02_features` (kernels, Spark Connect server, figures): {runner:.1f} s")
    print("\nMedian of the rounds' ratios:")
    print(f"reference / (01+02) = {speedup:.2f}   target >= {TARGET_SPEEDUP:g}   {verdict(speedup >= TARGET_SPEEDUP)}")
    print(f"ingest / floor      = {load:.2f}   target <= {TARGET_LOAD:g}   {verdict(load <= TARGET_LOAD)}")
    ceiling = table["reference / floor"].median()
    print(f"reference / floor   = {ceiling:.2f}   (the most reference / (01+02) can be when 01 parses the JSON)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
