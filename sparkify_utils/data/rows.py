"""Column expressions over raw rows that validation and de-duplication share: who is logged out, a row's
raw text, the projection onto the clean-events contract, and the hash of the keys that identify an event."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from sparkify_utils.data.read import CORRUPT_COLUMN, EVENTS_SCHEMA
from sparkify_utils.data.schema import ANONYMOUS_AUTH, DAY_MS, RAW_FIELDS

#: Two rows with the same values here are the same event.
DUPLICATE_KEYS = ("userId", "sessionId", "itemInSession", "ts", "page")
#: Column holding ``key_hash()`` while duplicates are looked for.
KEY_HASH = "__key_hash"


def anonymous() -> Column:
    """Logged-out/guest rows: eventsim writes ``userId == ""``; the full file uses a placeholder id."""
    return F.coalesce(F.col("auth").isin(*ANONYMOUS_AUTH) | (F.col("userId") == ""), F.lit(False))


def raw_text() -> Column:
    """The line as read for malformed rows, else the parsed record re-encoded as JSON."""
    return F.coalesce(F.col(CORRUPT_COLUMN), F.to_json(F.struct(*RAW_FIELDS)))


def clean_columns() -> list[Column]:
    """Projection of classified raw rows onto the clean-events contract (``EVENTS_SCHEMA``)."""
    logged_out = anonymous()
    cast = {f.name: f.dataType for f in EVENTS_SCHEMA.fields}
    cols = {name: F.col(name).cast(cast[name]) for name in RAW_FIELDS}
    cols["registration"] = F.when(~logged_out, cols["registration"])
    cols["userId"] = F.when(logged_out, F.lit("")).otherwise(F.col("userId"))
    # Pure epoch arithmetic: the UTC day whatever the session time zone.
    event_date = F.date_from_unix_date(F.floor(F.col("ts") / DAY_MS).cast("int"))
    return [*(cols[name].alias(name) for name in RAW_FIELDS), event_date.alias("event_date")]


def key_hash() -> Column:
    """Hash of the duplicate keys as ``events.parquet`` stores them, computed alike on raw and clean rows.

    ``userId`` is left out (a logged-out row's id is blanked in the clean events) and ``ts``/``itemInSession``
    are cast as the clean events cast them, so rows with equal raw keys always share it: it finds the
    candidates, and ``mark_duplicates`` compares the real keys.
    """
    return F.xxhash64(
        F.col("sessionId").cast("long"), F.col("itemInSession").cast("int"), F.col("ts").cast("long"), F.col("page")
    )
