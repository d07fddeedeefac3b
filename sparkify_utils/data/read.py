"""Reading Sparkify event logs: the read schemas, the input formats and their errors.

JSON lines (plain or ``.gz``, a file, glob, directory or URL) and Parquet are read with an explicit
schema, so Spark makes no inference pass. The clean-events contract (``events.parquet``, written by
:mod:`sparkify_utils.data.ingest`) is read back with :func:`read_clean_events`.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DateType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from sparkify_utils.artifacts import EDA, EVENTS
from sparkify_utils.data.schema import RAW_FIELDS
from sparkify_utils.paths import RunPaths, is_url

#: Columns without which a row is not an event.
REQUIRED_COLUMNS = ("ts", "page", "userId")
CORRUPT_COLUMN = "_corrupt_record"

#: Read schema for the JSON logs: explicit, so Spark makes no inference pass over the data.
#: ``ts`` and ``registration`` are read as doubles because some eventsim outputs write them as
#: floats (``1540919166796.0``); the loader casts them to epoch-ms longs.
RAW_SCHEMA = StructType(
    [
        StructField("artist", StringType()),
        StructField("auth", StringType()),
        StructField("firstName", StringType()),
        StructField("gender", StringType()),
        StructField("itemInSession", LongType()),
        StructField("lastName", StringType()),
        StructField("length", DoubleType()),
        StructField("level", StringType()),
        StructField("location", StringType()),
        StructField("method", StringType()),
        StructField("page", StringType()),
        StructField("registration", DoubleType()),
        StructField("sessionId", LongType()),
        StructField("song", StringType()),
        StructField("status", LongType()),
        StructField("ts", DoubleType()),
        StructField("userAgent", StringType()),
        StructField("userId", StringType()),
    ]
)

#: JSON read schema: the raw fields plus the column where Spark keeps the text of unparsable lines.
READ_SCHEMA = StructType([*RAW_SCHEMA.fields, StructField(CORRUPT_COLUMN, StringType())])

#: The clean-events contract (``events.parquet``); ``event_date`` is the UTC day of ``ts``.
EVENTS_SCHEMA = StructType(
    [
        StructField(name, {
            "itemInSession": IntegerType(), "length": DoubleType(), "registration": LongType(),
            "sessionId": LongType(), "status": IntegerType(), "ts": LongType(),
        }.get(name, StringType()))
        for name in RAW_FIELDS
    ]
    + [StructField("event_date", DateType())]
)


class DataLoadError(ValueError):
    """The input cannot be loaded as a Sparkify log; the message names the path and the fix."""



def _local_path(path: str) -> str | None:
    """The local filesystem path of ``path``, or None for a cluster URL (s3a://, hdfs://, ...)."""
    if path.startswith("file://"):
        return path.removeprefix("file://")
    return None if is_url(path) else path


def resolve_format(path: str, fmt: str = "auto") -> str:
    """The input format: ``fmt`` if given, else Parquet for a ``.parquet`` name or a local Parquet directory."""
    if fmt not in ("auto", "json", "parquet"):
        raise DataLoadError(f"Unknown input format {fmt!r}. Fix: use 'auto', 'json' or 'parquet'.")
    if fmt != "auto":
        return fmt
    if path.rstrip("/").endswith(".parquet"):
        return "parquet"
    local = _local_path(path)
    if local and os.path.isdir(local) and next(Path(local).rglob("*.parquet"), None):
        return "parquet"
    return "json"


def _missing_path_error(path: str) -> DataLoadError:
    return DataLoadError(
        f"No such path: {path}. Fix: check input_path (a file, glob, directory or s3a://, hdfs:// URL), "
        "or write a synthetic log there with `sparkify generate --out PATH`."
    )


def _read_parquet(spark: SparkSession, path: str) -> DataFrame:
    """Read Parquet and conform it to the raw schema (absent optional fields become nulls)."""
    df = spark.read.parquet(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataLoadError(
            f"The Parquet input {path} has no column {', '.join(missing)} (it has: {', '.join(df.columns)}). "
            "Fix: point input_path at a Sparkify event log with the fields ts, page and userId."
        )
    cols = [
        (F.col(f.name) if f.name in df.columns else F.lit(None)).cast(f.dataType).alias(f.name)
        for f in RAW_SCHEMA.fields
    ]
    return df.select(*cols, F.lit(None).cast("string").alias(CORRUPT_COLUMN))


def _check_not_json_array(spark: SparkSession, path: str) -> None:
    """Reject a JSON array early: Spark would parse a one-line array as one huge record."""
    first = spark.read.text(path).filter(F.trim("value") != "").select(F.ltrim("value").alias("v")).head()
    if first is not None and first["v"].startswith("["):
        raise DataLoadError(
            f"{path} is a JSON array, not JSON lines (one event object per line). "
            "Fix: convert it, e.g. `jq -c '.[]' in.json > events.json`, and point input_path at the result."
        )


def read_events(spark: SparkSession, path: str, fmt: str = "auto") -> DataFrame:
    """Read a raw log with the explicit raw schema (no inference pass): JSON lines or Parquet.

    ``path`` is a file, glob or directory (of part files), plain or ``.gz``, local or a URL. The result
    has the raw fields plus ``_corrupt_record`` (the text of lines that are not valid JSON events).
    ``fmt`` is ``auto`` (Parquet when the name ends ``.parquet``), ``json`` or ``parquet``.
    """
    local = _local_path(path)
    if local is not None and not glob.has_magic(local) and not os.path.exists(local):
        raise _missing_path_error(path)
    try:
        if resolve_format(path, fmt) == "parquet":
            return _read_parquet(spark, path)
        _check_not_json_array(spark, path)
        return (
            spark.read.schema(READ_SCHEMA)
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", CORRUPT_COLUMN)
            .json(path)
        )
    except AnalysisException as exc:
        if "PATH_NOT_FOUND" in str(exc):
            raise _missing_path_error(path) from None
        raise


def read_clean_events(spark: SparkSession, paths: RunPaths) -> DataFrame:
    """The clean events of a run (``events.parquet``), with the contract's schema."""
    path = paths.dataset(EVENTS)
    try:
        return spark.read.schema(EVENTS_SCHEMA).parquet(path)
    except AnalysisException as exc:
        if "PATH_NOT_FOUND" in str(exc):
            raise DataLoadError(
                f"No clean events at {path}. Fix: run notebook {EDA} with this run_dir/spark_dir first."
            ) from None
        raise
