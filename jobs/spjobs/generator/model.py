"""Deterministic generation of customer and transaction records (no Kafka here).

Faker is slow (tens of microseconds a call), so it only fills small pools once; each
record is then a handful of seeded ``random.Random`` draws and one f-string over
pre-escaped JSON fragments.  The stream interleaves ``FLUSH`` barriers where the
producer must wait for acknowledgements: after the customers, and after each wave of
customer updates, so no transaction ever refers to a customer version a consumer of
the customers topic could not have seen yet.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Final, NamedTuple

from faker import Faker

from spjobs import contract
from spjobs.generator.config import GeneratorConfig

KIND_CUSTOMER: Final = "customer"
KIND_CUSTOMER_UPDATE: Final = "customer_update"
KIND_TRANSACTION: Final = "transaction"
VALID_KINDS: Final = (KIND_CUSTOMER, KIND_CUSTOMER_UPDATE, KIND_TRANSACTION)
INJECTED: Final = tuple(contract.INJECTED_KINDS)
# Kinds that count against ``records`` and the rate: everything but customer records.
EVENT_KINDS: Final = frozenset((KIND_TRANSACTION, *INJECTED))

# Real cities (state code, weight ~ population in 100k) so per-city aggregates look sane.
# fmt: off
BRAZIL_CITIES: Final = (
    ("São Paulo", "SP", 115), ("Rio de Janeiro", "RJ", 62), ("Brasília", "DF", 28),
    ("Salvador", "BA", 24), ("Fortaleza", "CE", 24), ("Belo Horizonte", "MG", 23),
    ("Manaus", "AM", 20), ("Curitiba", "PR", 17), ("Recife", "PE", 15), ("Goiânia", "GO", 14),
    ("Porto Alegre", "RS", 13), ("Belém", "PA", 13), ("Guarulhos", "SP", 12), ("Campinas", "SP", 11),
    ("São Luís", "MA", 10), ("Maceió", "AL", 9), ("Campo Grande", "MS", 9), ("Teresina", "PI", 8),
    ("João Pessoa", "PB", 8), ("Natal", "RN", 7), ("Ribeirão Preto", "SP", 7), ("Uberlândia", "MG", 7),
    ("Sorocaba", "SP", 7), ("Joinville", "SC", 6), ("Cuiabá", "MT", 6), ("Aracaju", "SE", 6),
    ("Feira de Santana", "BA", 6), ("Florianópolis", "SC", 5), ("Londrina", "PR", 5),
    ("Juiz de Fora", "MG", 5), ("Niterói", "RJ", 5), ("Caxias do Sul", "RS", 5), ("Porto Velho", "RO", 5),
    ("Vila Velha", "ES", 5), ("Santos", "SP", 4), ("Macapá", "AP", 4), ("Rio Branco", "AC", 4),
    ("Boa Vista", "RR", 4), ("Campina Grande", "PB", 4), ("Maringá", "PR", 4), ("Blumenau", "SC", 4),
    ("Petrolina", "PE", 4), ("Anápolis", "GO", 4), ("Vitória", "ES", 3), ("Palmas", "TO", 3),
)
# category -> (weight, median amount in BRL, log-normal sigma); unknown categories get a default.
_CATEGORY_PROFILE: Final = {
    "groceries": (30, 120.0, 0.8), "restaurants": (20, 60.0, 0.6), "transport": (12, 25.0, 0.6),
    "fuel": (8, 180.0, 0.4), "health": (5, 150.0, 0.9), "education": (2, 600.0, 0.5),
    "entertainment": (6, 70.0, 0.7), "travel": (2, 1200.0, 0.8), "utilities": (5, 200.0, 0.5),
    "electronics": (3, 900.0, 0.9), "clothing": (7, 150.0, 0.7),
}
# fmt: on
_DEFAULT_PROFILE: Final = (3, 100.0, 0.8)
_PAYMENT_WEIGHT: Final = {"pix": 40, "credit_card": 30, "debit_card": 18, "boleto": 5, "cash": 7}
UNKNOWN_CATEGORIES: Final = tuple(
    c for c in ("gambling", "crypto", "weapons", "lottery", "unknown") if c not in contract.CATEGORIES
)
_SECONDS_FORMAT: Final = contract.TIMESTAMP_FORMAT.split(".%f")[0]
_MILLIS: Final = tuple(f".{i:03d}Z" for i in range(1000))
_ID_MULTIPLIER: Final = 0x9E3779B97F4A7C15F39D  # odd, so n -> n * M mod 2**80 is a bijection
_ID_MASK: Final = (1 << 80) - 1
_HOME_CITY_SHARE: Final = 0.85  # purchases made in the customer's own city
_POOL_NAMES: Final = 2000
_POOL_MERCHANTS: Final = 500
_RECENT_VALID: Final = 64  # duplicates re-send one of the last N valid transactions
_MAX_CENTS: Final = 10_000_000_00
_AMOUNTS_PER_CATEGORY: Final = 4096  # pre-formatted amounts drawn from each category's law
_STAMPS_CACHED: Final = 1 << 16  # event_time fragments kept (one per ms: over a minute's window)


class Record(NamedTuple):
    """One Kafka record; ``ident`` is its transaction_id or customer_id (for tallies)."""

    topic: str
    key: bytes
    value: bytes
    kind: str  # one of VALID_KINDS or a contract.INJECTED_KINDS key
    ident: str


class Flush:
    """Barrier in the stream: everything before it must be acknowledged before going on."""

    def __repr__(self) -> str:
        return "FLUSH"


FLUSH: Final = Flush()
Item = Record | Flush


class Injected(NamedTuple):
    """Where an injected invalid record went, so tests can find it downstream."""

    kind: str
    topic: str
    key: str
    ident: str


@dataclass
class Tally:
    """Records counted per kind (by the producer: only those the broker acknowledged)."""

    customers: int = 0
    customer_updates: int = 0
    transactions: int = 0
    invalid: dict[str, int] = field(default_factory=lambda: dict.fromkeys(INJECTED, 0))
    invalid_in_customers_topic: int = 0  # part of ``invalid`` that went to the customers topic
    unacknowledged: int = 0  # handed to the producer but not acknowledged when the run ended
    injected: list[Injected] | None = None  # filled only when tracking is on

    @property
    def invalid_total(self) -> int:
        return sum(self.invalid.values())

    @property
    def events(self) -> int:
        """What ``records`` bounds: valid transactions plus invalid records."""
        return self.transactions + self.invalid_total

    @property
    def total(self) -> int:
        return self.customers + self.customer_updates + self.events

    def add(self, kind: str, to_customers_topic: bool = False) -> None:
        if kind == KIND_TRANSACTION:
            self.transactions += 1
        elif kind == KIND_CUSTOMER:
            self.customers += 1
        elif kind == KIND_CUSTOMER_UPDATE:
            self.customer_updates += 1
        else:
            self.invalid[kind] += 1
            self.invalid_in_customers_topic += to_customers_topic

    def count(self, rec: Record, customers_topic: str) -> None:
        """Count one record (and remember it if it is injected and tracking is on)."""
        self.add(rec.kind, rec.topic == customers_topic)
        if self.injected is not None and rec.kind not in VALID_KINDS:
            self.injected.append(Injected(rec.kind, rec.topic, rec.key.decode(), rec.ident))

    def merge(self, other: Tally) -> Tally:
        """Sum of two tallies (workers' results)."""
        injected = None
        if self.injected is not None or other.injected is not None:
            injected = [*(self.injected or ()), *(other.injected or ())]
        return Tally(
            customers=self.customers + other.customers,
            customer_updates=self.customer_updates + other.customer_updates,
            transactions=self.transactions + other.transactions,
            invalid={
                k: self.invalid.get(k, 0) + other.invalid.get(k, 0)
                for k in dict.fromkeys([*self.invalid, *other.invalid])
            },
            invalid_in_customers_topic=self.invalid_in_customers_topic + other.invalid_in_customers_topic,
            unacknowledged=self.unacknowledged + other.unacknowledged,
            injected=injected,
        )

    def snapshot(self) -> Tally:
        """A copy safe to hand to another thread (without the injected list)."""
        return Tally(
            self.customers,
            self.customer_updates,
            self.transactions,
            dict(self.invalid),
            self.invalid_in_customers_topic,
            self.unacknowledged,
        )

    def as_dict(self) -> dict[str, object]:
        d: dict[str, object] = {
            "customers": self.customers,
            "customer_updates": self.customer_updates,
            "transactions": self.transactions,
            "invalid": dict(self.invalid),
            "invalid_total": self.invalid_total,
            "invalid_in_customers_topic": self.invalid_in_customers_topic,
            "events": self.events,
            "total": self.total,
            "unacknowledged": self.unacknowledged,
        }
        if self.injected is not None:
            d["injected"] = [r._asdict() for r in self.injected]
        return d


@dataclass(slots=True)
class _Customer:
    cid: str
    name: str
    email: str
    birth_date: str
    city: int  # index into BRAZIL_CITIES
    signup_time: str
    updated_ms: int


def _dumps(obj: dict[str, str]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _js(s: str) -> str:
    """A JSON string literal, so hot paths can splice values into an f-string safely."""
    return json.dumps(s, ensure_ascii=False)


def _expand(weights: list[int]) -> tuple[int, ...]:
    """Index table for O(1) weighted choice: index i appears weights[i] times."""
    return tuple(i for i, w in enumerate(weights) for _ in range(max(1, w)))


def _ascii_word(s: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", s.lower()) if c.isascii() and c.isalnum())


def _email_local(name: str) -> str:
    words = [_ascii_word(w) for w in name.split() if not w.endswith(".")]
    words = [w for w in words if w and w not in {"da", "de", "do", "das", "dos", "e"}] or ["cliente"]
    return f"{words[0]}.{words[-1]}" if len(words) > 1 else words[0]


def _years_before(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year - years)
    except ValueError:  # 29 February
        return d.replace(year=d.year - years, day=28)


def _cents(c: int) -> str:
    sign = "-" if c < 0 else ""
    c = abs(c)
    return f"{sign}{c // 100}.{c % 100:02d}"


class RecordModel:
    """Builds the record stream of one generator instance.

    Same config and same ``clock`` => the same sequence of records.  The event RNG also
    mixes in the clock's reading at construction, so a restarted replica (real clock)
    does not re-send the transaction ids of its previous life as duplicates.
    """

    def __init__(
        self,
        cfg: GeneratorConfig,
        clock: Callable[[], float] = time.time,
        *,
        wave_interval_seconds: float = 0.5,
        wave_max_events: int = 20_000,
    ) -> None:
        self.cfg = cfg
        self._clock = clock
        self._wave_interval = wave_interval_seconds
        self._wave_max_events = wave_max_events
        self._ctopic = cfg.customers_topic
        self._ttopic = cfg.transactions_topic
        self._inst = cfg.instance
        start = clock()
        self._start_ms = int(start * 1000)
        self._rng = random.Random(f"{cfg.seed}:{cfg.instance}:events:{self._start_ms}")
        self._ts_cache: dict[int, str] = {}
        self._stamps: dict[int, bytes] = {}  # epoch ms -> its encoded JSON fragment (hot path)
        self._recent: deque[Record] = deque(maxlen=_RECENT_VALID)
        self._next_bad_customer = 0
        self._next_unknown_customer = 0
        for kind in INJECTED:
            if not hasattr(self, f"_inject_{kind}"):
                raise NotImplementedError(f"the generator cannot inject contract kind {kind!r}")
        self._build_tables()
        self._build_pools(cfg)
        self._build_customers(cfg, datetime.fromtimestamp(start, timezone.utc).date())
        self._build_tx = self._make_tx_builder()

    # --- setup ---------------------------------------------------------------------

    def _build_tables(self) -> None:
        self._city_name = [c for c, _, _ in BRAZIL_CITIES]
        self._city_state = [s for _, s, _ in BRAZIL_CITIES]
        self._city_json = [_js(c) for c in self._city_name]
        self._city_pick = _expand([w for _, _, w in BRAZIL_CITIES])
        profiles = [_CATEGORY_PROFILE.get(c, _DEFAULT_PROFILE) for c in contract.CATEGORIES]
        self._cat_json = [_js(c) for c in contract.CATEGORIES]
        self._cat_pick = _expand([w for w, _, _ in profiles])
        self._pay_json = [_js(p) for p in contract.PAYMENT_METHODS]
        self._pay_pick = _expand([_PAYMENT_WEIGHT.get(p, 5) for p in contract.PAYMENT_METHODS])
        self._currency_json = _js(contract.CURRENCY)

    def _build_pools(self, cfg: GeneratorConfig) -> None:
        fake = Faker(cfg.locale)
        fake.seed_instance(f"{cfg.seed}:{cfg.instance}:pools")
        self._names = [fake.name() for _ in range(min(cfg.customers, _POOL_NAMES))]
        self._domains = sorted({fake.free_email_domain() for _ in range(20)})
        merchants = {fake.company() for _ in range(_POOL_MERCHANTS)}
        self._merchant = sorted(merchants)
        self._merchant_json = [_js(m) for m in self._merchant]
        # Log-normal amounts, drawn once: gauss() + exp() + formatting per record would
        # cost more than everything else in a transaction together.
        rng = random.Random(f"{cfg.seed}:{cfg.instance}:amounts")
        self._amounts = [
            tuple(
                _cents(min(max(int(median * 100 * math.exp(sigma * rng.gauss(0.0, 1.0))), 1), _MAX_CENTS))
                for _ in range(_AMOUNTS_PER_CATEGORY)
            )
            for _, median, sigma in (_CATEGORY_PROFILE.get(c, _DEFAULT_PROFILE) for c in contract.CATEGORIES)
        ]

    def _build_customers(self, cfg: GeneratorConfig, today: date) -> None:
        rng = random.Random(f"{cfg.seed}:{cfg.instance}:customers")
        latest = _years_before(today, 18)  # age 18 today
        earliest = _years_before(today, 91) + timedelta(days=1)  # age 90 until tomorrow
        span = (latest - earliest).days
        self._customers: list[_Customer] = []
        n_names = len(self._names)
        for i in range(cfg.customers):
            name = self._names[i] if i < n_names else self._names[rng.randrange(n_names)]
            email = f"{_email_local(name)}{i}@{rng.choice(self._domains)}"
            birth = earliest + timedelta(days=rng.randint(0, span))
            signup_ms = self._start_ms - rng.randrange(1, 5 * 365 * 86_400_000)
            self._customers.append(
                _Customer(
                    cid=f"C{self._inst}-{i:07d}",
                    name=name,
                    email=email,
                    birth_date=birth.strftime(contract.DATE_FORMAT),
                    city=self._city_pick[rng.randrange(len(self._city_pick))],
                    signup_time=self._iso(signup_ms),
                    updated_ms=0,
                )
            )
        # Parallel lists for the transaction hot path.
        self._cust_key = [c.cid.encode() for c in self._customers]
        self._cust_json = [_js(c.cid) for c in self._customers]
        self._cust_city = [c.city for c in self._customers]

    # --- formatting -----------------------------------------------------------------

    def _second(self, sec: int) -> str:
        """``yyyy-MM-ddTHH:mm:ss`` of a UTC epoch second; cached, strftime is slow."""
        prefix = self._ts_cache.get(sec)
        if prefix is None:
            if len(self._ts_cache) > 512:
                self._ts_cache.clear()
            prefix = self._ts_cache[sec] = time.strftime(_SECONDS_FORMAT, time.gmtime(sec))
        return prefix

    def _stamp(self, ms: int) -> bytes:
        """``yyyy-MM-ddTHH:mm:ss.SSSZ","amount":"`` encoded: a transaction's event_time
        and the text up to its amount; cached per millisecond (a lateness window's worth).
        """
        if len(self._stamps) >= _STAMPS_CACHED:
            self._stamps.clear()
        sec = ms // 1000
        stamp = self._stamps[ms] = f'{self._second(sec)}{_MILLIS[ms - sec * 1000]}","amount":"'.encode()
        return stamp

    def _iso(self, ms: int) -> str:
        """``yyyy-MM-ddTHH:mm:ss.SSSZ`` in UTC."""
        return self._second(ms // 1000) + _MILLIS[ms % 1000]

    def _customer_dict(self, c: _Customer) -> dict[str, str]:
        return {
            "customer_id": c.cid,
            "name": c.name,
            "email": c.email,
            "birth_date": c.birth_date,
            "state": self._city_state[c.city],
            "city": self._city_name[c.city],
            "signup_time": c.signup_time,
            "updated_at": self._iso(c.updated_ms),
        }

    def _make_tx_builder(self) -> Callable[[float], Record]:
        """The hot path, as a closure over locals: the transaction Record at ``now``.

        The JSON value is joined from pre-encoded byte fragments, each holding one
        value plus the constant text up to the next one (e.g. a customer's fragment is
        ``","customer_id":"C0-0000001","event_time":"``), so a record costs one
        ``bytes.join`` over nine pieces instead of formatting and UTF-8 encoding a
        str.  The random draws are those of a plain f-string over the fields in field
        order, so a seed gives the same records as ever.

        A transaction id is a UUIDv4 whose middle groups are random per run and whose
        first and last groups are an 80-bit counter scrambled by an odd multiplier (a
        bijection): ids look random yet can never repeat within a run, at a third of
        the cost of formatting 128 fresh random bits per record.  The counter is kept
        as ``k * multiplier mod 2**80`` directly (one addition per record).
        """
        rnd = self._rng.random
        cust_key, cust_city = self._cust_key, self._cust_city
        n_cust = len(cust_key)
        cust_frag = [f'","customer_id":{j},"event_time":"'.encode() for j in self._cust_json]
        currency = self._currency_json
        # Per category: its pre-formatted amounts, each with everything up to the city.
        cat_amounts = [
            tuple(f'{a}","currency":{currency},"category":{cj},"city":'.encode() for a in amounts)
            for cj, amounts in zip(self._cat_json, self._amounts)
        ]
        amounts_pick = tuple(cat_amounts[i] for i in self._cat_pick)
        n_amounts_pick, n_amounts = len(amounts_pick), len(self._amounts[0])
        city_frag = [f'{j},"payment_method":'.encode() for j in self._city_json]
        city_pick = tuple(city_frag[i] for i in self._city_pick)
        n_city_pick = len(city_pick)
        pay_pick = tuple(f'{self._pay_json[i]},"merchant":'.encode() for i in self._pay_pick)
        n_pay_pick = len(pay_pick)
        merchant_frag = [f"{j}}}".encode() for j in self._merchant_json]
        n_merchant = len(merchant_frag)
        lateness_ms = self.cfg.max_lateness_seconds * 1000
        stamps, stamp = self._stamps, self._stamp
        h = f"{self._rng.getrandbits(48):012x}"
        id_middle = f"-{h[:4]}-4{h[5:8]}-{'89ab'[int(h[8], 16) & 3]}{h[9:12]}-"
        topic, kind, new, join, floor = self._ttopic, KIND_TRANSACTION, tuple.__new__, b"".join, math.floor
        home_share, multiplier, mask = _HOME_CITY_SHARE, _ID_MULTIPLIER, _ID_MASK
        scrambled = 0  # k * multiplier mod 2**80 for the k-th transaction built

        # floor(rnd() * n) is int(rnd() * n) (never negative) at two thirds of the cost.
        def build(now: float) -> Record:
            nonlocal scrambled
            c = floor(rnd() * n_cust)
            ms = int(now * 1000 - rnd() * lateness_ms)
            amounts = amounts_pick[floor(rnd() * n_amounts_pick)]
            city = city_frag[cust_city[c]] if rnd() < home_share else city_pick[floor(rnd() * n_city_pick)]
            # 8 hex digits, "-", 12 hex digits; the "-" becomes the middle groups.
            tid = scrambled.to_bytes(10, "big").hex("-", 6).replace("-", id_middle)
            scrambled = (scrambled + multiplier) & mask
            value = join(
                (
                    b'{"transaction_id":"',
                    tid.encode(),
                    cust_frag[c],
                    stamps.get(ms) or stamp(ms),
                    amounts[floor(rnd() * n_amounts)],
                    city,
                    pay_pick[floor(rnd() * n_pay_pick)],
                    merchant_frag[floor(rnd() * n_merchant)],
                )
            )
            return new(Record, (topic, cust_key[c], value, kind, tid))

        return build

    # --- the stream -----------------------------------------------------------------

    def stream(self) -> Iterator[Item]:
        """All customers, a barrier, then events forever (the caller bounds it).

        Chained in C rather than with ``yield from``: one generator frame less per record.
        """
        return itertools.chain(self.customer_records(), (FLUSH,), self.events())

    def customer_records(self) -> Iterator[Record]:
        now_ms = int(self._clock() * 1000)
        for i, c in enumerate(self._customers):
            c.updated_ms = now_ms
            value = _dumps(self._customer_dict(c)).encode()
            yield Record(self._ctopic, self._cust_key[i], value, KIND_CUSTOMER, c.cid)

    def events(self) -> Iterator[Item]:
        """Transactions and injected invalid records, with customer-update waves.

        Updates are only counted per event and emitted together (then ``FLUSH``) at most
        every ``wave_interval_seconds`` of clock time or ``wave_max_events`` events, so the
        producer waits for the broker a few times a second, not per record.
        """
        rnd = self._rng.random
        clock = self._clock
        update_ratio = self.cfg.customer_update_ratio
        invalid_ratio = self.cfg.invalid_ratio
        wave_interval, wave_max_events = self._wave_interval, self._wave_max_events
        n_kinds = len(INJECTED)
        build, remember = self._build_tx, self._recent.append
        pending = since_wave = 0
        last_wave = clock()
        while True:
            now = clock()
            if update_ratio and rnd() < update_ratio:
                pending += 1
            if pending and (now - last_wave >= wave_interval or since_wave >= wave_max_events):
                yield from self._update_wave(pending, now)
                yield FLUSH
                pending = since_wave = 0
                last_wave = now
            since_wave += 1
            if invalid_ratio and rnd() < invalid_ratio:
                kind = INJECTED[int(rnd() * n_kinds)]
                if kind == "duplicate_transaction_id" and not self._recent:
                    kind = INJECTED[(INJECTED.index(kind) + 1) % n_kinds]  # nothing to duplicate yet
                yield getattr(self, f"_inject_{kind}")(now)
            else:
                rec = build(now)
                remember(rec)
                yield rec

    def _update_wave(self, count: int, now: float) -> Iterator[Record]:
        rng = self._rng
        now_ms = int(now * 1000)
        for _ in range(count):
            i = rng.randrange(len(self._customers))
            c = self._customers[i]
            city = c.city
            while city == c.city:
                city = self._city_pick[int(rng.random() * len(self._city_pick))]
            c.city = self._cust_city[i] = city
            c.updated_ms = max(c.updated_ms + 1, now_ms)
            value = _dumps(self._customer_dict(c)).encode()
            yield Record(self._ctopic, self._cust_key[i], value, KIND_CUSTOMER_UPDATE, c.cid)

    # --- injected invalid records: each has exactly one defect ---------------------------

    def _tx_dict(self, now: float) -> tuple[bytes, dict[str, str]]:
        """A fresh valid transaction as a dict, for the rare invalid ones to damage."""
        rec = self._build_tx(now)
        return rec.key, json.loads(rec.value)

    def _bad_customer(self, now: float) -> dict[str, str]:
        """A well-formed customer with a fresh id that no transaction ever references."""
        rng = self._rng
        n = self._next_bad_customer
        self._next_bad_customer += 1
        template = self._customers[rng.randrange(len(self._customers))]
        c = _Customer(
            cid=f"Q{self._inst}-{n:07d}",
            name=template.name,
            email=f"q{n}.{template.email}",
            birth_date=template.birth_date,
            city=template.city,
            signup_time=template.signup_time,
            updated_ms=int(now * 1000),
        )
        return self._customer_dict(c)

    def _bad_customer_record(self, kind: str, d: dict[str, str], cid: str) -> Record:
        return Record(self._ctopic, cid.encode(), _dumps(d).encode(), kind, cid)

    def _bad_tx_record(self, kind: str, key: bytes, d: dict[str, str], tid: str) -> Record:
        return Record(self._ttopic, key, _dumps(d).encode(), kind, tid)

    def _inject_missing_field(self, now: float) -> Record:
        rng = self._rng
        if rng.random() < 0.5:
            d = self._bad_customer(now)
            cid = d["customer_id"]
            del d[rng.choice(contract.CUSTOMER_REQUIRED)]
            return self._bad_customer_record("missing_field", d, cid)
        key, d = self._tx_dict(now)
        tid = d["transaction_id"]
        del d[rng.choice(contract.TRANSACTION_REQUIRED)]
        return self._bad_tx_record("missing_field", key, d, tid)

    def _inject_malformed_date(self, now: float) -> Record:
        rng = self._rng
        if rng.random() < 0.5:
            d = self._bad_customer(now)
            d["birth_date"] = f"31/02/{d['birth_date'][:4]}"  # wrong format and no such day
            return self._bad_customer_record("malformed_date", d, d["customer_id"])
        key, d = self._tx_dict(now)
        year = d["event_time"][:4]
        d["event_time"] = (
            f"{year}-{rng.randint(13, 19)}-{rng.randint(32, 45)}T"
            f"{rng.randint(24, 29)}:{rng.randint(60, 69)}:00.000Z"
        )
        return self._bad_tx_record("malformed_date", key, d, d["transaction_id"])

    def _inject_non_positive_amount(self, now: float) -> Record:
        rng = self._rng
        key, d = self._tx_dict(now)
        d["amount"] = "0.00" if rng.random() < 0.3 else _cents(-rng.randint(1, 50_000))
        return self._bad_tx_record("non_positive_amount", key, d, d["transaction_id"])

    def _inject_unknown_category(self, now: float) -> Record:
        key, d = self._tx_dict(now)
        d["category"] = self._rng.choice(UNKNOWN_CATEGORIES)
        return self._bad_tx_record("unknown_category", key, d, d["transaction_id"])

    def _inject_unknown_customer(self, now: float) -> Record:
        _, d = self._tx_dict(now)
        cid = f"X{self._inst}-{self._next_unknown_customer:07d}"
        self._next_unknown_customer += 1
        d["customer_id"] = cid
        return self._bad_tx_record("unknown_customer", cid.encode(), d, d["transaction_id"])

    def _inject_duplicate_transaction_id(self, now: float) -> Record:
        """Byte-identical re-send of a recent valid transaction (same key: same partition, later)."""
        rec = self._recent[int(self._rng.random() * len(self._recent))]
        return Record(self._ttopic, rec.key, rec.value, "duplicate_transaction_id", rec.ident)

    def _inject_malformed_json(self, now: float) -> Record:
        rng = self._rng
        if rng.random() < 0.5:
            d = self._bad_customer(now)
            topic, key, ident = self._ctopic, d["customer_id"].encode(), d["customer_id"]
        else:
            key, d = self._tx_dict(now)
            topic, ident = self._ttopic, d["transaction_id"]
        text = _dumps(d)
        cut = rng.randint(1, len(text) - 2)  # drops at least the closing brace
        return Record(topic, key, text[:cut].encode(), "malformed_json", ident)
