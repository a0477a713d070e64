"""The Spark half of a micro-batch: parse and validate every record, on the executors.

Every function takes and returns DataFrames and touches no storage, so each one is
unit-tested on a handful of rows.  The rules follow :mod:`spjobs.contract`; the first
failing rule of a record is its quarantine reason.  What needs the pipeline's history
(duplicate ids, the customer as of a transaction) is :mod:`.stateful`'s job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import Column, DataFrame
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


def _json_schema(fields: Sequence[str]) -> T.StructType:
    # Everything is read as a string so that a wrong type becomes a reason, not a null.
    return T.StructType(
        [T.StructField(f, T.StringType()) for f in fields] + [T.StructField("_corrupt", T.StringType())]
    )


def payload_schema() -> T.StructType:
    """The union of both record types' fields, each a string, plus ``_corrupt``."""
    return _json_schema(tuple(dict.fromkeys(C.CUSTOMER_FIELDS + C.TRANSACTION_FIELDS)))


def _blank(col: Column) -> Column:
    return col.isNull() | (F.trim(col) == "")


def _first_missing(fields: Sequence[str], col: Callable[[str], Column]) -> Column:
    """Name of the first required field that is absent, null or blank (else null)."""
    return F.coalesce(*[F.when(_blank(col(f)), F.lit(f)) for f in fields])


def _from_json(schema: T.StructType) -> Column:
    return F.from_json("value", schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt"})


def _not_an_object(fields: Sequence[str]) -> Column:
    # Malformed text lands in _corrupt; "{}" or "null" leaves every field null.
    any_field = reduce(lambda a, b: a | b, [F.col(f).isNotNull() for f in fields])
    return F.col("_corrupt").isNotNull() | F.col("value").isNull() | ~any_field


def _ts(col: Column) -> Column:
    return F.when(col.rlike(_TS_RE), F.try_to_timestamp(col))


def _date(col: Column) -> Column:
    return F.when(col.rlike(_DATE_RE), F.try_to_timestamp(col, F.lit("yyyy-MM-dd")).cast("date"))


@dataclass(frozen=True)
class Rules:
    """How one record type is checked: its fields, typed columns and ordered rules.

    Every record type is first checked for being a JSON object and for its required
    fields; ``checks`` are the record type's own rules, in order.
    """

    fields: tuple[str, ...]
    required: tuple[str, ...]
    typed: dict[str, Column]
    checks: list[tuple[Column, str, Column]]
    missing: str  # name of the helper column holding the first missing required field

    def all_checks(self) -> list[tuple[Column, str, Column]]:
        missing = F.col(self.missing)
        common = [
            (_not_an_object(self.fields), C.REASON_MALFORMED_JSON, F.lit("payload is not a JSON object")),
            (
                missing.isNotNull(),
                C.REASON_MISSING_FIELD,
                F.concat(F.lit("missing required field '"), missing, F.lit("'")),
            ),
        ]
        return common + self.checks


def _cases(branches: Sequence[tuple[Column, Column]]) -> Column:
    """One flat CASE WHEN: the first true branch wins, else null."""
    (cond, value), *rest = branches
    out = F.when(cond, value)
    for cond, value in rest:
        out = out.when(cond, value)
    return out


def _first_failing(checks: list[tuple[Column, str, Column]], base: int) -> Column:
    """``base + i`` for the first failing check i, null when all pass (conditions evaluated once)."""
    return _cases([(cond, F.lit(base + i)) for i, (cond, _, _) in enumerate(checks)])


def customer_rules(col: Callable[[str], Column]) -> Rules:
    """``col`` resolves a payload field for the typed columns (the checks use plain names)."""
    return Rules(
        C.CUSTOMER_FIELDS,
        C.CUSTOMER_REQUIRED,
        {
            "birth_date_d": _date(col("birth_date")),
            "signup_time_ts": _ts(col("signup_time")),
            "updated_at_ts": _ts(col("updated_at")),
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
        "_missing_customer",
    )


def transaction_rules(col: Callable[[str], Column]) -> Rules:
    """``col`` resolves a payload field for the typed columns (the checks use plain names)."""
    amount = F.trim(col("amount"))
    return Rules(
        C.TRANSACTION_FIELDS,
        C.TRANSACTION_REQUIRED,
        {
            "event_time_ts": _ts(col("event_time")),
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
        "_missing_transaction",
    )


class BatchChecker:
    """Both record types validated and typed in ONE pass over a batch: what the driver collects.

    One row per input record with its Kafka coordinates and raw payload (a record that
    ends in quarantine later, as a duplicate or for an unknown customer, needs it), its
    ``reason``/``detail`` so far, and typed fields.  The payload is parsed once against
    the union of both record types' fields and each row is judged by its topic's rules:
    splitting the batch by topic first would read it from Kafka twice.  Event-time
    parts are computed here, with Spark's own calendar.  A record of any other topic is
    judged by the transaction rules (the query subscribes to the two topics only, and the
    driver splits the batch by topic).

    The column expressions are built once: building them is hundreds of Py4J calls,
    which cost more than the Spark job itself on a small batch.
    """

    def __init__(self, customers_topic: str, transactions_topic: str) -> None:
        # The fields are read straight from the parsed struct, so parsing, field extraction,
        # the required-field scan and the typed columns are two projections, not four.
        in_json = lambda name: F.col(f"_j.{name}")  # noqa: E731
        cust, txn = customer_rules(in_json), transaction_rules(in_json)
        schema = payload_schema()
        self._parse = [*RAW_COLUMNS, _from_json(schema).alias("_j")]
        self._typed = [
            *RAW_COLUMNS,
            *[in_json(f.name).alias(f.name) for f in schema.fields],
            _first_missing(cust.required, in_json).alias(cust.missing),
            _first_missing(txn.required, in_json).alias(txn.missing),
            *[c.alias(n) for n, c in {**cust.typed, **txn.typed}.items()],
        ]
        rules_typed = [*{**cust.typed, **txn.typed}]
        # Each row's first failing check as a number, then reason and detail from it: the
        # conditions are evaluated once, not once for the reason and again for the detail.
        c_checks, t_checks = cust.all_checks(), txn.all_checks()
        is_customer = F.col("topic") == customers_topic
        first = F.when(is_customer, _first_failing(c_checks, 0)).otherwise(_first_failing(t_checks, 100))
        kept = [*RAW_COLUMNS, *[f.name for f in schema.fields if f.name != "_corrupt"]]
        self._judged = [*kept, cust.missing, txn.missing, *rules_typed, first.alias("_check")]
        numbered = [(i, code, msg) for i, (_, code, msg) in enumerate(c_checks)]
        numbered += [(100 + i, code, msg) for i, (_, code, msg) in enumerate(t_checks)]
        reason = _cases([(F.col("_check") == i, F.lit(code)) for i, code, _ in numbered])
        detail = _cases([(F.col("_check") == i, msg) for i, _, msg in numbered])
        ev = F.col("event_time_ts")
        self._final = [
            *RAW_COLUMNS,
            reason.alias("reason"),
            detail.alias("detail"),
            "customer_id",
            "city",
            "name",
            "email",
            F.col("birth_date_d").alias("birth_date"),
            "state",
            F.col("signup_time_ts").alias("signup_time"),
            F.col("updated_at_ts").alias("updated_at"),
            "transaction_id",
            ev.alias("event_time"),
            F.col("amount_d").alias("amount"),
            (F.col("amount_d") * 100).cast("long").alias("amount_cents"),
            "currency",
            "category",
            "payment_method",
            "merchant",
            F.year(ev).alias("year"),
            F.month(ev).alias("month"),
            (F.month(ev) * 100 + F.dayofmonth(ev)).alias("month_day"),
        ]

    def __call__(self, raw: DataFrame) -> DataFrame:
        typed = raw.select(*self._parse).select(*self._typed)
        return typed.select(*self._judged).select(*self._final)


def parse_payloads(raw: DataFrame) -> DataFrame:
    """Every payload parsed exactly as :class:`BatchChecker` parses it, its fields in place of
    the raw text, nothing checked: the benchmark's parse-only baseline (the plain copy
    with the same information, parsed)."""
    kept = [c for c in RAW_COLUMNS if c != "value"]
    return raw.select(*kept, _from_json(payload_schema()).alias("_j")).select(*kept, "_j.*")


def checked_batch(raw: DataFrame, customers_topic: str, transactions_topic: str) -> DataFrame:
    """:class:`BatchChecker` applied once (tests; the job keeps one checker)."""
    return BatchChecker(customers_topic, transactions_topic)(raw)
