"""The data contract shared by the generator and the Spark job.

Both programs run in different images, so neither may import the other; this module
(stdlib only) is the one place where record fields, vocabularies, quarantine reasons
and the output layout are written down.  README.md documents the same contract for
users, and tests check the two jobs against it.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Final

# --- Kafka record payloads (UTF-8 JSON, one object per record; key = customer_id) ---

CUSTOMER_FIELDS: Final = (
    "customer_id",
    "name",
    "email",
    "birth_date",  # ISO date, yyyy-MM-dd
    "state",  # two-letter state code, e.g. "SP"
    "city",
    "signup_time",  # ISO-8601 UTC timestamp with milliseconds and a trailing "Z"
    "updated_at",  # same format; a customer is re-sent with a newer value when it moves
)
CUSTOMER_REQUIRED: Final = CUSTOMER_FIELDS

TRANSACTION_FIELDS: Final = (
    "transaction_id",
    "customer_id",
    "event_time",  # ISO-8601 UTC timestamp, yyyy-MM-ddTHH:mm:ss.SSSZ
    "amount",  # decimal string with exactly two places, e.g. "123.45" (never a float)
    "currency",
    "category",
    "city",  # where the purchase happened (may differ from the customer's city)
    "payment_method",
    "merchant",
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
CURRENCY: Final = "BRL"

DATE_FORMAT: Final = "%Y-%m-%d"
TIMESTAMP_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"  # python writes 6 digits; we trim to 3

# --- What the generator injects and what the Spark job calls it -------------------
# Each injected invalid record carries exactly one defect, so it has exactly one reason.

REASON_MALFORMED_JSON: Final = "malformed_json"
REASON_MISSING_FIELD: Final = "missing_field"
REASON_MALFORMED_DATE: Final = "malformed_date"
REASON_INVALID_AMOUNT: Final = "invalid_amount"
REASON_NON_POSITIVE_AMOUNT: Final = "non_positive_amount"
REASON_UNKNOWN_CATEGORY: Final = "unknown_category"
REASON_UNKNOWN_PAYMENT_METHOD: Final = "unknown_payment_method"
REASON_DUPLICATE_TRANSACTION_ID: Final = "duplicate_transaction_id"
REASON_UNKNOWN_CUSTOMER: Final = "unknown_customer"

REASONS: Final = (
    REASON_MALFORMED_JSON,
    REASON_MISSING_FIELD,
    REASON_MALFORMED_DATE,
    REASON_INVALID_AMOUNT,
    REASON_NON_POSITIVE_AMOUNT,
    REASON_UNKNOWN_CATEGORY,
    REASON_UNKNOWN_PAYMENT_METHOD,
    REASON_DUPLICATE_TRANSACTION_ID,
    REASON_UNKNOWN_CUSTOMER,
)

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
