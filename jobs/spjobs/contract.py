"""The data contract shared by the generator and the Spark job.

Both programs run in different images, so neither may import the other; this module
(stdlib only) is the one place where record fields, vocabularies, quarantine reasons
and the output layout are written down.  README.md documents the same contract for
users, and tests check the two jobs against it.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Final

# --- Kafka records ------------------------------------------------------------------
# A record's value is one JSON object (RFC 8259) encoded in UTF-8, at most
# MAX_RECORD_BYTES bytes, with no byte order mark.  Every field below is a JSON *string*
# (never a number, boolean, object or array); a field that is absent or null counts as
# missing, and so does a required one that is empty or only whitespace.  No name may
# appear twice in any object of the record.  Fields not listed here are ignored (any JSON
# value).  The Kafka key is not interpreted (any bytes, or none): producers should key by
# customer_id so that one customer's records keep their order.  Headers are ignored.

CUSTOMER_FIELDS: Final = (
    "customer_id",
    "name",
    "email",
    "birth_date",  # DATE_PATTERN, a real calendar day; plausible (see MAX_AGE_YEARS)
    "state",  # two-letter state code, e.g. "SP" (not checked against a list)
    "city",
    "signup_time",  # TIMESTAMP_PATTERN, within [MIN_TIMESTAMP_MS, MAX_TIMESTAMP_MS)
    "updated_at",  # same; a customer is re-sent with a newer value when it moves
)
CUSTOMER_REQUIRED: Final = CUSTOMER_FIELDS

TRANSACTION_FIELDS: Final = (
    "transaction_id",
    "customer_id",
    "event_time",  # TIMESTAMP_PATTERN, within [MIN_TIMESTAMP_MS, MAX_TIMESTAMP_MS)
    "amount",  # AMOUNT_PATTERN: a decimal string with exactly two places, e.g. "123.45"
    "currency",  # optional; when present exactly CURRENCY
    "category",  # one of CATEGORIES
    "city",  # where the purchase happened (may differ from the customer's city)
    "payment_method",  # one of PAYMENT_METHODS
    "merchant",  # optional, free text
)
TRANSACTION_REQUIRED: Final = (
    "transaction_id",
    "customer_id",
    "event_time",
    "amount",
    "category",
    "city",
    "payment_method",
)

CATEGORIES: Final = (
    "groceries",
    "restaurants",
    "transport",
    "fuel",
    "health",
    "education",
    "entertainment",
    "travel",
    "utilities",
    "electronics",
    "clothing",
)
PAYMENT_METHODS: Final = ("pix", "credit_card", "debit_card", "boleto", "cash")
CURRENCY: Final = "BRL"  # the pipeline's only currency: amounts of others are not summed with it

DATE_FORMAT: Final = "%Y-%m-%d"
TIMESTAMP_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"  # python writes 6 digits; we trim to 3

# --- Limits: what a valid record may hold, to the byte ----------------------------------

MAX_RECORD_BYTES: Final = 16_384  # a record's value; larger is record_too_large
MAX_FIELD_CHARS: Final = 256  # any string field, in Unicode code points; longer is field_too_long
# yyyy-MM-dd, ASCII digits.
DATE_PATTERN: Final = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
# RFC 3339 profile: yyyy-MM-ddTHH:mm:ss, an optional fraction of 1-9 digits (kept to the
# microsecond, truncated), then "Z" or an offset +HH:MM / -HH:MM (hours 00-23).  Upper-case
# "T" and "Z" only; no leap second (ss <= 59); no local time without a zone.
TIMESTAMP_PATTERN: Final = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})"
)
# Every instant the job accepts, after the offset is applied: event_time, signup_time,
# updated_at and the record's Kafka timestamp.  [1970-01-01T00:00:00Z, 2100-01-01T00:00:00Z)
MIN_TIMESTAMP_MS: Final = 0
MAX_TIMESTAMP_MS: Final = 4_102_444_800_000  # exclusive
# An optional "-" (so that a negative amount is non_positive_amount, not invalid_amount),
# no leading zeros, at most AMOUNT_MAX_INTEGER_DIGITS integer digits, exactly 2 places.
AMOUNT_MAX_INTEGER_DIGITS: Final = 8  # so at most 99,999,999.99
AMOUNT_PATTERN: Final = r"-?(0|[1-9][0-9]{0,7})\.[0-9]{2}"
# A customer's birth_date must not be after its signup_time's day or its record's Kafka
# day (UTC), nor more than this many years before the Kafka day.
MAX_AGE_YEARS: Final = 130

# --- Quarantine reasons -------------------------------------------------------------
# Each rejected record gets exactly one: the first failing check in this order.  The
# record checks run in the order of REASONS; within one check, fields go in field order.

REASON_TIMESTAMP_OUT_OF_RANGE: Final = "timestamp_out_of_range"  # Kafka's, or a field's
REASON_NULL_VALUE: Final = "null_value"  # a Kafka record without a value (a tombstone)
REASON_RECORD_TOO_LARGE: Final = "record_too_large"
REASON_INVALID_ENCODING: Final = "invalid_encoding"  # not UTF-8, or a lone surrogate escape
REASON_MALFORMED_JSON: Final = "malformed_json"  # not one RFC 8259 JSON object
REASON_DUPLICATE_FIELD: Final = "duplicate_field"
REASON_WRONG_TYPE: Final = "wrong_type"  # a field that is not a JSON string
REASON_MISSING_FIELD: Final = "missing_field"
REASON_FIELD_TOO_LONG: Final = "field_too_long"
REASON_MALFORMED_DATE: Final = "malformed_date"  # birth date or a timestamp
REASON_IMPLAUSIBLE_BIRTH_DATE: Final = "implausible_birth_date"
REASON_INVALID_AMOUNT: Final = "invalid_amount"
REASON_NON_POSITIVE_AMOUNT: Final = "non_positive_amount"
REASON_UNSUPPORTED_CURRENCY: Final = "unsupported_currency"
REASON_UNKNOWN_CATEGORY: Final = "unknown_category"
REASON_UNKNOWN_PAYMENT_METHOD: Final = "unknown_payment_method"
# Decided on the driver, against the pipeline's history:
REASON_DUPLICATE_TRANSACTION_ID: Final = "duplicate_transaction_id"
REASON_UNKNOWN_CUSTOMER: Final = "unknown_customer"
REASON_EVENT_BEFORE_BIRTH: Final = "event_before_birth"  # event_time before the customer's birth

# The record checks in order; a field's timestamp_out_of_range comes after the formats
# (malformed_date), the Kafka timestamp's before everything else.
RECORD_CHECKS: Final = (
    REASON_TIMESTAMP_OUT_OF_RANGE,  # the Kafka timestamp
    REASON_NULL_VALUE,
    REASON_RECORD_TOO_LARGE,
    REASON_INVALID_ENCODING,  # the bytes
    REASON_MALFORMED_JSON,
    REASON_DUPLICATE_FIELD,
    REASON_WRONG_TYPE,
    REASON_INVALID_ENCODING,  # a lone surrogate escape in a field
    REASON_MISSING_FIELD,
    REASON_FIELD_TOO_LONG,
    REASON_MALFORMED_DATE,
    REASON_TIMESTAMP_OUT_OF_RANGE,  # signup_time, updated_at / event_time
    REASON_IMPLAUSIBLE_BIRTH_DATE,  # customers
    REASON_INVALID_AMOUNT,  # transactions from here
    REASON_NON_POSITIVE_AMOUNT,
    REASON_UNSUPPORTED_CURRENCY,
    REASON_UNKNOWN_CATEGORY,
    REASON_UNKNOWN_PAYMENT_METHOD,
)
STATEFUL_CHECKS: Final = (
    REASON_DUPLICATE_TRANSACTION_ID,
    REASON_UNKNOWN_CUSTOMER,
    REASON_EVENT_BEFORE_BIRTH,
)
REASONS: Final = tuple(dict.fromkeys(RECORD_CHECKS + STATEFUL_CHECKS))

# Kinds of invalid record the generator injects (its tally uses these keys).  The value
# is the quarantine reason the Spark job must give that record.
INJECTED_KINDS: Final = {
    "missing_field": REASON_MISSING_FIELD,
    "malformed_date": REASON_MALFORMED_DATE,
    "non_positive_amount": REASON_NON_POSITIVE_AMOUNT,
    "unknown_category": REASON_UNKNOWN_CATEGORY,
    "unknown_customer": REASON_UNKNOWN_CUSTOMER,
    "duplicate_transaction_id": REASON_DUPLICATE_TRANSACTION_ID,
    "malformed_json": REASON_MALFORMED_JSON,
}

# --- Output layout under the sink path ----------------------------------------------

OUT_TRANSACTIONS: Final = "transactions"
OUT_CUSTOMERS: Final = "customers"
OUT_QUARANTINE: Final = "quarantine"
OUT_AGGREGATES: Final = "aggregates"
AGGREGATES: Final = {
    "by_category": ("category",),
    "by_city": ("city",),
    "by_customer": ("customer_id",),
    "by_period_state_age_band": ("year", "month", "state", "age_band"),
}
CHECKPOINTS_DIR: Final = "_checkpoints"  # never inside a dataset directory

DEFAULT_AGE_BANDS: Final = (30, 60)
DEFAULT_AGE_BAND_LABELS: Final = ("young", "adult", "senior")


def age_band_labels(bands: tuple[int, ...] | list[int]) -> tuple[str, ...]:
    """Labels for ``len(bands) + 1`` age bands.

    The seed's three bands keep their names; any other cut-off list gets range labels
    so that a reader of the Parquet never has to look the thresholds up.
    """
    bands = tuple(bands)
    if bands == DEFAULT_AGE_BANDS:
        return DEFAULT_AGE_BAND_LABELS
    labels = [f"under_{bands[0]}"]
    labels += [f"{lo}_{hi - 1}" for lo, hi in pairwise(bands)]
    labels.append(f"{bands[-1]}_plus")
    return tuple(labels)
