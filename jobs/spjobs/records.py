"""The REST service's write check: the Spark job's own record checks, plus one API policy.

The service refuses a bad record *before* producing it, and must name every bad field of
it.  It does not re-implement the contract: it encodes each record to the exact bytes it
will produce (:func:`encode`) and asks the job's module (:func:`spjobs.processor.records.
problems`) for every problem of those bytes, whose first is the job's own verdict.  So a
record the API accepts is, byte for byte, one the job's record checks accept, and every
reason is the contract's (``contract.REASONS``).

One rule is the API's alone, a write policy and not a contract reason (the job ignores
fields it does not know): a field the contract does not name is refused, as
``unknown_field`` (:data:`API_POLICY_REASONS`), so that a typo such as ``ammount`` is not
produced silently.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Final, Literal

from . import contract as C
from .processor import records as P

Kind = Literal["customer", "transaction"]

REASON_UNKNOWN_FIELD: Final = "unknown_field"  # API write policy: not a quarantine reason
API_POLICY_REASONS: Final = (REASON_UNKNOWN_FIELD,)


@dataclass(frozen=True)
class FieldError:
    """One bad field of one record ("" for the record as a whole): why (a reason code), and a sentence."""

    field: str
    reason: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason, "message": self.message}


def encode(record: Any) -> bytes:
    """The bytes the service produces for ``record``: compact UTF-8 JSON.  A string with a
    lone surrogate cannot be UTF-8, so such a record is written with ``\\uXXXX`` escapes
    (which the job then rejects as ``invalid_encoding``, naming the field)."""
    try:
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(record, separators=(",", ":")).encode("utf-8")


def validate(kind: Kind, record: Any, kafka_us: int | None = None) -> list[FieldError]:
    """Every defect of ``record`` as a ``kind`` record; an empty list means it is valid.

    ``kafka_us`` stands for the Kafka timestamp the broker will give it (default: now)."""
    if kafka_us is None:
        kafka_us = time.time_ns() // 1000
    try:
        value = encode(record)
    except (TypeError, ValueError, RecursionError) as exc:  # not JSON data: only from Python callers
        return [FieldError("", C.REASON_MALFORMED_JSON, f"the record is not JSON data: {str(exc)[:100]}")]
    errors = [
        FieldError(p.field, p.rejected.reason, p.rejected.detail)
        for p in P.problems(kind == "customer", value, kafka_us)
    ]
    if isinstance(record, dict):
        known = C.CUSTOMER_FIELDS if kind == "customer" else C.TRANSACTION_FIELDS
        for name in sorted(k for k in record if k not in known):
            shown = name if len(name) <= 80 else name[:80] + "..."
            errors.append(
                FieldError(
                    shown,
                    REASON_UNKNOWN_FIELD,
                    f"{kind} records have no field {shown!r}: the API refuses fields the contract"
                    " does not name",
                )
            )
    return errors


__all__ = ["API_POLICY_REASONS", "REASON_UNKNOWN_FIELD", "FieldError", "Kind", "encode", "validate"]
