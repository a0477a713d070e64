"""Pure DataFrame transforms of one micro-batch: parse, validate, de-duplicate, enrich.

Every function takes and returns DataFrames and touches no storage, so each one is
unit-tested on a handful of rows.  The rules follow :mod:`spjobs.contract`; the first
failing rule of a record is its quarantine reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from .. import contract as C

AMOUNT_TYPE = T.DecimalType(12, 2)
# A plain decimal with at most two places and at most ten integer digits (fits AMOUNT_TYPE).
_AMOUNT_RE = r"^-?[0-9]{1,10}(\.[0-9]{1,2})?$"
_DATE_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_TS_RE = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:?[0-9]{2})?$"
)

# Columns every raw row carries (from the Kafka source).
RAW_COLUMNS = ("topic", "partition", "offset", "kafka_timestamp", "key", "value")

QUARANTINE_COLUMNS = (
    "record_type",
    "reason",
    "detail",
    "transaction_id",
    "customer_id",
    "topic",
    "partition",
    "offset",
    "kafka_timestamp",
    "key",
    "raw_value",
    "batch_id",
)


def _json_schema(fields: Sequence[str]) -> T.StructType:
    # Everything is read as a string so that a wrong type becomes a reason, not a null.
    return T.StructType(
        [T.StructField(f, T.StringType()) for f in fields] + [T.StructField("_corrupt", T.StringType())]
    )


def _project(df: DataFrame, new: dict[str, Column], drop: Sequence[str] = ()) -> DataFrame:
    """Replace/add columns and drop others in ONE projection.

    Each ``withColumn`` re-analyses the whole plan from Python; a micro-batch builds its
    plan anew every time, so chains of them cost seconds per batch on a small machine.
    The expressions in ``new`` may only refer to columns that already exist in ``df``.
    """
    keep = [F.col(c) if c not in new else new[c].alias(c) for c in df.columns if c not in drop]
    return df.select(*keep, *[v.alias(k) for k, v in new.items() if k not in df.columns])


def _blank(col: Column) -> Column:
    return col.isNull() | (F.trim(col) == "")


def _first_missing(fields: Sequence[str]) -> Column:
    """Name of the first required field that is absent, null or blank (else null)."""
    return F.coalesce(*[F.when(_blank(F.col(f)), F.lit(f)) for f in fields])


def _parse(raw: DataFrame, schema: T.StructType) -> DataFrame:
    parsed = raw.withColumn(
        "_j", F.from_json("value", schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt"})
    )
    fields = [f.name for f in schema.fields]
    return parsed.select(*RAW_COLUMNS, *[F.col(f"_j.{f}").alias(f) for f in fields])


def _not_an_object(fields: Sequence[str]) -> Column:
    # Malformed text lands in _corrupt; "{}" or "null" leaves every field null.
    any_field = reduce(lambda a, b: a | b, [F.col(f).isNotNull() for f in fields])
    return F.col("_corrupt").isNotNull() | F.col("value").isNull() | ~any_field


def _ts(col: Column) -> Column:
    return F.when(col.rlike(_TS_RE), F.try_to_timestamp(col))


def _date(col: Column) -> Column:
    return F.when(col.rlike(_DATE_RE), F.try_to_timestamp(col, F.lit("yyyy-MM-dd")).cast("date"))


def _classify(checks: list[tuple[Column, str, Column]]) -> tuple[Column, Column]:
    """(reason, detail) of the first failing check, null when all pass."""
    reason = F.lit(None).cast("string")
    detail = F.lit(None).cast("string")
    for cond, code, msg in reversed(checks):
        reason = F.when(cond, F.lit(code)).otherwise(reason)
        detail = F.when(cond, msg).otherwise(detail)
    return reason, detail


def _validate(
    raw: DataFrame,
    fields: Sequence[str],
    required: Sequence[str],
    typed: dict[str, Column],
    checks: list[tuple[Column, str, Column]],
) -> DataFrame:
    """Parse, add ``typed`` columns, and set ``reason``/``detail`` from the first failing check.

    Every record type is first checked for being a JSON object and for its required
    fields; ``checks`` are the record type's own rules, in order.
    """
    df = _project(_parse(raw, _json_schema(fields)), {"_missing": _first_missing(required), **typed})
    common = [
        (_not_an_object(fields), C.REASON_MALFORMED_JSON, F.lit("payload is not a JSON object")),
        (
            F.col("_missing").isNotNull(),
            C.REASON_MISSING_FIELD,
            F.concat(F.lit("missing required field '"), F.col("_missing"), F.lit("'")),
        ),
    ]
    reason, detail = _classify(common + checks)
    return _project(df, {"reason": reason, "detail": detail}, drop=("_missing",))


def validate_customers(raw: DataFrame) -> DataFrame:
    """Parse customer records; adds ``reason``/``detail`` (null when valid) and typed columns."""
    return _validate(
        raw,
        C.CUSTOMER_FIELDS,
        C.CUSTOMER_REQUIRED,
        {
            "birth_date_d": _date(F.col("birth_date")),
            "signup_time_ts": _ts(F.col("signup_time")),
            "updated_at_ts": _ts(F.col("updated_at")),
        },
        [
            (
                F.col("birth_date_d").isNull(),
                C.REASON_MALFORMED_DATE,
                F.concat(F.lit("birth_date is not yyyy-MM-dd: "), F.col("birth_date")),
            ),
            (
                F.col("signup_time_ts").isNull(),
                C.REASON_MALFORMED_DATE,
                F.concat(F.lit("signup_time is not an ISO-8601 timestamp: "), F.col("signup_time")),
            ),
            (
                F.col("updated_at_ts").isNull(),
                C.REASON_MALFORMED_DATE,
                F.concat(F.lit("updated_at is not an ISO-8601 timestamp: "), F.col("updated_at")),
            ),
        ],
    )


def customer_versions(validated: DataFrame) -> DataFrame:
    """Valid customers as the state/output rows: one row per received version."""
    return validated.where(F.col("reason").isNull()).select(
        "customer_id",
        "name",
        "email",
        F.col("birth_date_d").alias("birth_date"),
        "state",
        "city",
        F.col("signup_time_ts").alias("signup_time"),
        F.col("updated_at_ts").alias("updated_at"),
        "kafka_timestamp",
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
    )


def validate_transactions(raw: DataFrame) -> DataFrame:
    """Stateless checks of transaction records; adds ``reason``/``detail`` and typed columns."""
    amount = F.trim(F.col("amount"))
    return _validate(
        raw,
        C.TRANSACTION_FIELDS,
        C.TRANSACTION_REQUIRED,
        {
            "event_time_ts": _ts(F.col("event_time")),
            "amount_d": F.when(amount.rlike(_AMOUNT_RE), amount.try_cast(AMOUNT_TYPE)),
        },
        [
            (
                F.col("event_time_ts").isNull(),
                C.REASON_MALFORMED_DATE,
                F.concat(F.lit("event_time is not an ISO-8601 timestamp: "), F.col("event_time")),
            ),
            (
                F.col("amount_d").isNull(),
                C.REASON_INVALID_AMOUNT,
                F.concat(F.lit("amount is not a decimal with at most 2 places: "), F.col("amount")),
            ),
            (
                F.col("amount_d") <= 0,
                C.REASON_NON_POSITIVE_AMOUNT,
                F.concat(F.lit("amount must be > 0, got "), F.col("amount")),
            ),
            (
                ~F.col("category").isin(*C.CATEGORIES),
                C.REASON_UNKNOWN_CATEGORY,
                F.concat(F.lit("unknown category: "), F.col("category")),
            ),
            (
                ~F.col("payment_method").isin(*C.PAYMENT_METHODS),
                C.REASON_UNKNOWN_PAYMENT_METHOD,
                F.concat(F.lit("unknown payment_method: "), F.col("payment_method")),
            ),
        ],
    )


_ARRIVAL = ("kafka_timestamp", "partition", "offset")


def mark_duplicates(candidates: DataFrame, seen_ids: DataFrame | None) -> DataFrame:
    """Set reason ``duplicate_transaction_id`` on all but the first arrival of each id.

    First means lowest (kafka_timestamp, partition, offset) in this batch, and an id seen
    in any earlier batch makes every arrival here a duplicate.  Only rows that passed
    the stateless checks take part, so a broken record never "uses up" an id.
    """
    ok = F.col("reason").isNull()
    df = _project(candidates, {"_ok": ok})
    rank = F.row_number().over(Window.partitionBy("transaction_id", "_ok").orderBy(*_ARRIVAL))
    df = _project(df, {"_rank": F.when(F.col("_ok"), rank)})
    if seen_ids is not None:
        # Scan the (large) id state once against this batch's ids, broadcast; the hits
        # are few, so flagging them is a broadcast join too: no shuffle of the state.
        batch_ids = F.broadcast(candidates.where(ok).select("transaction_id"))
        hits = seen_ids.select("transaction_id").join(batch_ids, "transaction_id", "left_semi")
        df = df.join(F.broadcast(hits.withColumn("_seen", F.lit(True))), "transaction_id", "left")
    seen = F.col("_seen").isNotNull() if seen_ids is not None else F.lit(False)
    dup = F.col("_ok") & ((F.col("_rank") > 1) | seen)
    detail = F.concat(F.lit("transaction_id already received: "), F.col("transaction_id"))
    return _project(
        df,
        {
            "detail": F.when(dup, detail).otherwise(F.col("detail")),
            "reason": F.when(dup, F.lit(C.REASON_DUPLICATE_TRANSACTION_ID)).otherwise(F.col("reason")),
        },
        drop=("_ok", "_rank", "_seen"),
    )


def age_band(age: Column, bands: Sequence[int]) -> Column:
    labels = C.age_band_labels(list(bands))
    expr = F.lit(labels[-1])
    for cut, label in reversed(list(zip(bands, labels))):
        expr = F.when(age < cut, F.lit(label)).otherwise(expr)
    return F.when(age.isNotNull(), expr)


def age_at(birth: Column, when: Column) -> Column:
    """Whole years between two dates (birthday not yet reached this year counts one less)."""
    before_birthday = (F.month(when) < F.month(birth)) | (
        (F.month(when) == F.month(birth)) & (F.dayofmonth(when) < F.dayofmonth(birth))
    )
    return F.year(when) - F.year(birth) - F.when(before_birthday, 1).otherwise(0)


def customer_history(versions: DataFrame) -> DataFrame:
    """One row per customer with all its versions, oldest first (a small, broadcastable table)."""
    # Arrival order breaks ties: a customer re-sent twice in the same millisecond is the
    # same partition (same key), so the offset says which version came last.
    v = F.struct(
        F.col("kafka_timestamp").alias("ts"),
        F.col("kafka_partition").alias("partition"),
        F.col("kafka_offset").alias("offset"),
        F.col("state").alias("state"),
        F.col("city").alias("city"),
        F.col("birth_date").alias("birth_date"),
    )
    return versions.groupBy(F.col("customer_id").alias("_c_id")).agg(
        F.array_sort(F.collect_list(v)).alias("_h")
    )


def enrich(candidates: DataFrame, versions: DataFrame, bands: Sequence[int]) -> DataFrame:
    """Join each still-valid transaction to its customer as of the transaction's arrival.

    The version used is the latest one whose Kafka timestamp is <= the transaction's (the
    generator acknowledges a customer before it references it), else the earliest one.
    A transaction with no valid customer at all gets reason ``unknown_customer``.
    The customer history is broadcast and the version picked with array functions, so
    enrichment shuffles nothing but the (small) history.
    """
    ok = F.col("reason").isNull()
    hist = F.broadcast(customer_history(versions))
    joined = candidates.join(hist, (candidates["customer_id"] == hist["_c_id"]) & ok, "left")
    eligible = F.filter("_h", lambda v: v["ts"] <= F.col("kafka_timestamp"))
    best = F.when(F.size(eligible) > 0, F.element_at(eligible, -1)).otherwise(F.element_at("_h", 1))
    unknown = ok & F.col("_c_id").isNull()
    v = F.when(~unknown & ok, best)
    valid_age = F.when(ok & ~unknown, age_at(v["birth_date"], F.col("event_time_ts")))
    missing = F.concat(F.lit("no valid customer with id "), F.col("customer_id"))
    return _project(
        joined,
        {
            "detail": F.when(unknown, missing).otherwise(F.col("detail")),
            "reason": F.when(unknown, F.lit(C.REASON_UNKNOWN_CUSTOMER)).otherwise(F.col("reason")),
            "c_state": v["state"],
            "c_city": v["city"],
            "age": valid_age,
            "age_band": age_band(valid_age, bands),
        },
        drop=("_c_id", "_h"),
    )


def transaction_rows(classified: DataFrame, late_before: datetime | None = None) -> DataFrame:
    """The ``transactions/`` dataset rows (valid, enriched), in contract column order.

    ``is_late`` flags events older than ``late_before`` (the watermark as of the start of
    the batch); late events are still written and still count in every aggregate.
    """
    late = F.lit(False) if late_before is None else F.col("event_time_ts") < F.lit(late_before)
    return classified.where(F.col("reason").isNull()).select(
        "transaction_id",
        "customer_id",
        F.col("event_time_ts").alias("event_time"),
        F.col("amount_d").alias("amount"),
        F.coalesce(F.col("currency"), F.lit(C.CURRENCY)).alias("currency"),
        "category",
        "city",
        "payment_method",
        "merchant",
        F.col("c_state").alias("state"),
        F.col("c_city").alias("customer_city"),
        "age",
        "age_band",
        late.alias("is_late"),
        F.year("event_time_ts").alias("year"),
        F.month("event_time_ts").alias("month"),
        "kafka_timestamp",
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
    )


def quarantine_rows(classified: DataFrame, record_type: str, batch_id: int) -> DataFrame:
    """Rejected records with the raw payload and why, in contract column order."""
    has_txn = "transaction_id" in classified.columns
    return classified.where(F.col("reason").isNotNull()).select(
        F.lit(record_type).alias("record_type"),
        "reason",
        "detail",
        (F.col("transaction_id") if has_txn else F.lit(None).cast("string")).alias("transaction_id"),
        "customer_id",
        "topic",
        "partition",
        "offset",
        "kafka_timestamp",
        "key",
        F.col("value").alias("raw_value"),
        F.lit(batch_id).cast("long").alias("batch_id"),
    )


def aggregate_deltas(transactions: DataFrame) -> DataFrame:
    """Counts and sums (in cents) of one batch for all four aggregates, in one job.

    ``agg`` names the aggregate; the key columns that do not belong to it are null.
    """
    keys = sorted({k for ks in C.AGGREGATES.values() for k in ks})
    sets = ", ".join("(" + ", ".join(ks) + ")" for ks in C.AGGREGATES.values())
    transactions.select(*keys, (F.col("amount") * 100).cast("long").alias("cents")).createOrReplaceTempView(
        "_sp_batch_txns"
    )
    whens = []
    for name, ks in C.AGGREGATES.items():
        cond = " AND ".join(f"grouping({k}) = {0 if k in ks else 1}" for k in keys)
        whens.append(f"WHEN {cond} THEN '{name}'")
    case = " ".join(whens)
    spark = transactions.sparkSession
    return spark.sql(
        f"SELECT CASE {case} END AS agg, {', '.join(keys)}, "
        f"count(*) AS transaction_count, sum(cents) AS total_cents "
        f"FROM _sp_batch_txns GROUP BY GROUPING SETS ({sets})"
    )
