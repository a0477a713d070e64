"""Records and helpers shared by the REST service's tests."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def customer(cid: str | None = None, **over: object) -> dict:
    d = {
        "customer_id": cid or f"api-{uuid.uuid4().hex[:10]}",
        "name": "Ana Lima",
        "email": "ana@example.com.br",
        "birth_date": "1990-05-01",
        "state": "PE",
        "city": "Recife",
        "signup_time": "2025-01-01T00:00:00.000Z",
        "updated_at": now_iso(),
    }
    d.update(over)
    return {k: v for k, v in d.items() if v is not ...}


def transaction(cid: str, tid: str | None = None, **over: object) -> dict:
    d = {
        "transaction_id": tid or f"api-{uuid.uuid4()}",
        "customer_id": cid,
        "event_time": now_iso(),
        "amount": "42.50",
        "currency": "BRL",
        "category": "groceries",
        "city": "Recife",
        "payment_method": "pix",
        "merchant": "Mercado Teste",
    }
    d.update(over)
    return {k: v for k, v in d.items() if v is not ...}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
