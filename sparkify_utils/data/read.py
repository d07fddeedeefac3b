"""Reading Sparkify event logs: the read schemas, the input formats and their errors.

JSON lines (plain or ``.gz``, a file, glob, directory or URL) and Parquet are read with an explicit
schema, so Spark makes no inference pass. The clean-events contract (``events.parquet``, which
:mod:`sparkify_utils.data.ingest` fills) is written with :func:`write_clean_events` and read back with
:func:`read_clean_events`.

Inputs that are not a Sparkify log get a message naming the problem and the fix instead of Spark's
own error: a JSON array or an HTML page (recognised from the first non-blank line), a truncated or
corrupt ``.gz`` (:func:`explained_read_failures`) and a field of the wrong type (:func:`wrong_types`).
"""

from __future__ import annotations

import contextlib
import glob
import gzip
import json
import os
import re
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

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
        StructField(
            name,
            {
                "itemInSession": IntegerType(),
                "length": DoubleType(),
                "registration": LongType(),
                "sessionId": LongType(),
                "status": IntegerType(),
                "ts": LongType(),
            }.get(name, StringType()),
        )
        for name in RAW_FIELDS
    ]
    + [StructField("event_date", DateType())]
)
#: Rows per file of ``events.parquet`` at most: removing a few duplicate events rewrites only the files that
#: hold them, so smaller files make that cheaper (measured on the 1 GB log: 0.75 s instead of 1.5 s with
#: Spark's one file per 128 MB of JSON), and readers merge small files into one partition anyway.
EVENTS_FILE_ROWS = 100_000


class DataLoadError(ValueError):
    """The input cannot be loaded as a Sparkify log; the message names the path and the fix."""


#: How much of the first non-blank line is looked at to recognise a JSON array or an HTML page.
_SNIFF_CHARS = 200
#: Compression Spark recognises from the file name; only these are sniffed in Python (gzip) or not at all.
_COMPRESSED = (".bz2", ".deflate", ".lz4", ".snappy", ".zst", ".zstd")
#: Fix for a file that cannot be decompressed.
_GZIP_FIX = (
    "Fix: download or copy the file again (`gunzip -t FILE` prints nothing for a whole file), "
    "or point input_path at the uncompressed .json."
)


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


def _first_line_local(local: str) -> str | None:
    """The start of the first non-blank line of a local plain or ``.gz`` file (None if it has none).

    Reads at most a few blocks: a one-line JSON array of a whole log is not loaded into memory.
    """
    opener = gzip.open if local.endswith(".gz") else open
    try:
        with opener(local, "rb") as stream:
            head = b""
            while block := stream.read(1 << 16):
                head = (head + block).lstrip()
                if len(head) >= _SNIFF_CHARS:
                    break
    except (EOFError, OSError, zlib.error) as exc:
        if local.endswith(".gz") and (problem := gzip_problem(local)):
            raise DataLoadError(f"{local} {problem}. {_GZIP_FIX}") from None
        raise DataLoadError(f"Cannot read {local}: {exc}. Fix: check the file exists and is readable.") from None
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff").lstrip()
    return text.splitlines()[0][:_SNIFF_CHARS] if text else None


def _first_line(spark: SparkSession, path: str) -> str | None:
    """The start of the first non-blank line of the input: read in Python for one local file, else by Spark."""
    local = _local_path(path)
    if local is not None and os.path.isfile(local) and not local.endswith(_COMPRESSED):
        return _first_line_local(local)
    first = (
        spark.read.text(path)
        .filter(F.trim("value") != "")
        .select(F.substring(F.ltrim("value"), 1, _SNIFF_CHARS).alias("v"))
        .head()
    )
    return None if first is None else first["v"]


def _check_first_line(spark: SparkSession, path: str) -> None:
    """Reject early what is not JSON lines at all, from its first non-blank line (cheap: a few bytes).

    A JSON array (Spark would parse a one-line array as one huge record) and an HTML page saved under a
    ``.json`` name (a browser saving a file view of a notebook server, GitHub, a bucket console, ...).
    """
    with explained_read_failures(path):
        first = _first_line(spark, path)
    if first is None:
        return
    if first.startswith("["):
        raise DataLoadError(
            f"{path} is a JSON array, not JSON lines (one event object per line). "
            "Fix: convert it, e.g. `jq -c '.[]' in.json > events.json`, and point input_path at the result."
        )
    if first.startswith("<"):
        kind = "an HTML page" if re.match(r"<(!doctype\s+html|html|head|body|!--)", first, re.I) else "HTML/XML markup"
        raise DataLoadError(
            f"{path} is {kind}, not a JSON-lines event log: its first line is {first[:80]!r}. A browser "
            "probably saved the web page that shows the file (a notebook server's or GitHub's file view) "
            "instead of the file itself. Fix: download the raw file (the Download or Raw link, or "
            "`curl -L -o events.json <raw file URL>`) and point input_path at it."
        )


def gzip_problem(local: str) -> str | None:
    """Why the local gzip file ``local`` cannot be decompressed to its end, or None if it can.

    Reads the whole file, so only for the failure path (or a small file).
    """
    try:
        with gzip.open(local, "rb") as stream:
            while stream.read(1 << 20):
                pass
    except EOFError:
        return "is a truncated gzip stream (the file ends before the end of its compressed data)"
    except gzip.BadGzipFile as exc:
        return f"is not a valid gzip stream ({exc})"
    except (zlib.error, OSError) as exc:
        return f"is a corrupt gzip stream ({exc})"
    return None


def _local_gzip_files(path: str, files: Sequence[str]) -> list[str]:
    """The local ``.gz`` files among ``files`` (Spark's URIs), or found at ``path`` when none are given."""
    if not files:
        local = _local_path(path)
        if local is None:
            return []
        if os.path.isdir(local):
            files = [str(p) for p in Path(local).rglob("*.gz")]
        else:
            files = glob.glob(local) if glob.has_magic(local) else [local]
    found = []
    for name in files:
        # Spark names files by URI (file:///a%20b.json.gz); a plain path stays as it is.
        local = unquote(urlparse(name).path) if name.startswith("file:") else _local_path(name)
        if local and local.endswith(".gz") and os.path.isfile(local):
            found.append(local)
    return found


def read_failure(exc: BaseException, path: str, files: Sequence[str] = ()) -> DataLoadError | None:
    """A :class:`DataLoadError` explaining a Spark read failure caused by a broken ``.gz`` input, else None.

    Spark reports it as ``FAILED_READ_FILE`` naming the file, in classic PySpark (``Py4JJavaError``) and
    Spark Connect (its own ``SparkException``) alike; the file (or, if the message names none, every local
    ``.gz`` input) is then checked with Python's gzip, which tells a truncated stream from a corrupt one.
    """
    message = str(exc)
    named = re.search(r"reading file (.+?)\.\s+SQLSTATE", message) or re.search(
        r"reading file (\S+?)\.?(?:\s|$)", message
    )
    candidates = [named.group(1)] if named else list(files)
    for local in _local_gzip_files(path, candidates):
        if problem := gzip_problem(local):
            return DataLoadError(f"{local} {problem}, so {path} cannot be read. {_GZIP_FIX}")
    gzip_signs = (
        "Unexpected end of input stream",
        "not a gzip file",
        "incorrect header check",
        "invalid block type",
        "invalid distance",
        "Corrupt GZIP trailer",
        "ZLIB_INPUT_STREAM",
    )
    if named and named.group(1).endswith(".gz") and any(sign in message for sign in gzip_signs):
        return DataLoadError(
            f"{named.group(1)} is a truncated or corrupt gzip stream, so {path} cannot be read. {_GZIP_FIX}"
        )
    return None


@contextlib.contextmanager
def explained_read_failures(path: str, files: Sequence[str] = ()) -> Iterator[None]:
    """Turn Spark's failure to decompress a ``.gz`` input (a Java stack trace) into a :class:`DataLoadError`."""
    try:
        yield
    except DataLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - Py4JJavaError or a pyspark.errors class; others re-raised
        explained = read_failure(exc, path, files)
        if explained is None:
            raise
        raise explained from None


def _fits(value: object, data_type: object) -> bool:
    """Whether Spark's JSON reader accepts ``value`` (a parsed JSON value) for a field of ``data_type``."""
    if isinstance(data_type, StringType):
        return True  # numbers, booleans and nested values are read as their JSON text
    if isinstance(value, bool):
        return False
    if isinstance(data_type, LongType):
        return isinstance(value, int) and -(2**63) <= value < 2**63
    if isinstance(data_type, DoubleType):
        return isinstance(value, int | float) or (
            isinstance(value, str) and value.lstrip("+-") in ("NaN", "Infinity", "INF")
        )
    return True


def wrong_types(line: str) -> str | None:
    """For a line refused by the read schema that is nevertheless valid JSON: which fields have the wrong
    type and the value found (None if the line is not a JSON object or every field fits)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    problems = []
    for field in RAW_SCHEMA.fields:
        value = record.get(field.name)
        if value is None or _fits(value, field.dataType):
            continue
        if field.name in ("ts", "registration"):
            expected = "epoch milliseconds (a number such as 1538352117000)"
        elif isinstance(field.dataType, LongType):
            expected = "an integer"
        else:
            expected = "a number"
        problems.append(f"`{field.name}` must be {expected}, found {value!r}")
    return "; ".join(problems) or None


#: Fix for fields of the wrong type.
TYPE_FIX = (
    "Fix: write every field with the type of the Sparkify format: ts and registration as epoch milliseconds "
    "(numbers; from ISO date strings in pandas: `pd.to_datetime(s, utc=True).astype('int64') // 10**6`), "
    "itemInSession, sessionId and status as integers, length as a number."
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
        _check_first_line(spark, path)
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


def write_clean_events(events: DataFrame, path: str, mode: str = "overwrite") -> None:
    """Write ``EVENTS_SCHEMA`` rows to the clean-events dataset at ``path``, ``EVENTS_FILE_ROWS`` per file at most."""
    events.write.mode(mode).option("maxRecordsPerFile", EVENTS_FILE_ROWS).parquet(path)


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
