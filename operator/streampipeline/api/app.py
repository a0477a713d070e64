"""The routes: health, status, topics and messages, datasets, the dashboard, and the
original Flask service's three paths (the compatibility layer)."""

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from spjobs import records as R

from . import datasets as D
from . import models as M
from .auth import bearer, require_token
from .config import ApiConfig
from .kafka_io import KafkaGateway, KafkaUnavailable, pick, read_windows
from .problems import ProblemError, install, responses
from .telemetry import Sampler, status

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
TOPIC = Annotated[str, PathParam(description="one of the pipeline's two topics", max_length=249)]

DESCRIPTION = """\
REST access to one StreamPipeline's Kafka topics and Parquet sink, and a live dashboard at `/`.

* Reads of topics are by offset with no consumer group: the same query answers the same on any
  replica, before and after a restart.
* Writes (`POST`) need `Authorization: Bearer <token>`. Records for the pipeline's topics are
  validated against the data contract first: one bad field in a batch rejects the whole batch
  (422, every bad field of every record named) and nothing is produced.
* Errors are RFC 7807 problem details (`application/problem+json`).
* **Compatibility layer**: `GET /status`, `GET /mensagens/{topic}?limite=50` and
  `POST /publicar/{topic}` answer as the original Flask "Kafka webservice" did, on the same rules.
"""


def create_app(cfg: ApiConfig, gateway: KafkaGateway | None = None, sample: bool = True) -> FastAPI:
    """The service for one pipeline; ``sample`` runs the dashboard's background sampler."""
    gw = gateway or KafkaGateway(cfg.bootstrap_servers, cfg.kafka_timeout)
    sampler = Sampler(cfg, gw)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if sample:
            sampler.start()
        try:
            yield
        finally:
            sampler.stop()
            gw.close()

    app = FastAPI(
        title="StreamPipeline API",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "health"},
            {"name": "pipeline"},
            {"name": "datasets"},
            {"name": "dashboard"},
            {"name": "compatibility", "description": "the original Flask service's paths"},
        ],
    )
    app.state.config = cfg
    app.state.gateway = gw
    app.state.sampler = sampler
    install(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _health_routes(app, gw)
    _pipeline_routes(app, cfg, gw)
    _dataset_routes(app, cfg)
    _dashboard_routes(app, cfg, sampler)
    _legacy_routes(app, cfg, gw)
    return app


# -- shared helpers ---------------------------------------------------------------------
def _kind_of(cfg: ApiConfig, topic: str) -> str:
    kind = cfg.topics.get(topic)
    if kind is None:
        raise ProblemError(
            404, f"{topic[:100]!r} is not one of this pipeline's topics ({', '.join(cfg.topics)})"
        )
    return kind


def _kafka(call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except KafkaUnavailable as exc:
        raise ProblemError(503, f"Kafka did not answer: {exc}") from exc


def _read_latest(
    cfg: ApiConfig, gw: KafkaGateway, topic: str, start: Any, limit: int, partition: int | None
) -> tuple[list[dict[str, Any]], bool]:
    parts = _kafka(gw.partitions, topic)
    if parts is None:
        raise ProblemError(404, f"topic {topic!r} does not exist on the broker yet")
    if partition is not None:
        if partition not in parts:
            raise ProblemError(404, f"topic {topic!r} has no partition {partition} (it has {len(parts)})")
        parts = [partition]
    marks = _kafka(gw.watermarks, topic, parts)
    records, truncated = _kafka(gw.read, topic, read_windows(marks, start, limit), cfg.max_response_bytes)
    return pick(records, start, limit), truncated


def _parse_start(raw: str) -> Any:
    if raw in ("latest", "earliest"):
        return raw
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0 or not raw.isdigit():
        raise ProblemError(
            422,
            "the request is invalid",
            [
                {
                    "field": "query.from",
                    "reason": "invalid",
                    "message": "from must be latest, earliest or an offset >= 0",
                }
            ],
        )
    return value


async def _body(request: Request, limit: int) -> Any:
    """The request's JSON body, refused past ``limit`` bytes without reading further."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProblemError(413, f"the request body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProblemError(413, f"the request body is larger than {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ProblemError(400, f"the body is not valid UTF-8 JSON: {str(exc)[:200]}") from None


def _records_of(body: Any, max_batch: int) -> list[Any]:
    if isinstance(body, list):
        records = body
    elif isinstance(body, dict) and set(body) == {"records"} and isinstance(body["records"], list):
        records = body["records"]
    else:
        records = [body]
    if not records:
        raise ProblemError(
            422, 'the batch is empty: send one record, an array of records, or {"records": [...]}'
        )
    if len(records) > max_batch:
        raise ProblemError(413, f"a batch holds at most {max_batch} records, got {len(records)}")
    return records


def validate_batch(kind: str, records: list[Any]) -> list[dict[str, Any]]:
    """Every bad field of every record, each naming the record's index (empty when all pass):
    the Spark job's checks on the bytes that would be produced, and the API's unknown-field policy."""
    errors = []
    for i, rec in enumerate(records):
        for err in R.validate(kind, rec):  # type: ignore[arg-type]
            errors.append({"record": i, **err.as_dict()})
    return errors


async def _produce(cfg: ApiConfig, gw: KafkaGateway, topic: str, records: list[Any]) -> list[dict[str, Any]]:
    kind = _kind_of(cfg, topic)
    errors = validate_batch(kind, records)
    if errors:
        raise ProblemError(
            422,
            f"{len({e['record'] for e in errors})} of {len(records)} records break the data contract; "
            "nothing was produced",
            errors,
        )
    # The very bytes validate_batch judged with the job's own checks.
    encoded = [(r["customer_id"].encode("utf-8"), R.encode(r)) for r in records]
    try:
        results = await run_in_threadpool(gw.produce, topic, encoded)
    except KafkaUnavailable as exc:
        raise ProblemError(503, f"Kafka did not answer: {exc}") from exc
    failed = [i for i, r in enumerate(results) if "error" in r]
    if failed:
        raise ProblemError(
            503,
            f"Kafka did not acknowledge {len(failed)} of {len(records)} records; the others were produced",
            [
                {"record": i, "field": "", "reason": "not_acknowledged", "message": results[i]["error"]}
                for i in failed
            ],
        )
    return [{**res, "key": r["customer_id"]} for res, r in zip(results, records)]


def _authorize(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    require_token(request, credentials)


# -- routes -------------------------------------------------------------------------------
def _health_routes(app: FastAPI, gw: KafkaGateway) -> None:
    @app.get("/healthz", tags=["health"], response_model=M.Health)
    def healthz() -> dict[str, str]:
        """The process is up (no dependency is checked)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], response_model=M.Ready, responses=responses(503))
    def readyz() -> dict[str, str]:
        """Ready only when the Kafka broker answers."""
        if not gw.reachable():
            raise ProblemError(503, f"Kafka at {gw.bootstrap} does not answer")
        return {"status": "ready", "kafka": gw.bootstrap}


def _pipeline_routes(app: FastAPI, cfg: ApiConfig, gw: KafkaGateway) -> None:
    @app.get("/api/v1/status", tags=["pipeline"], response_model=M.Status)
    def get_status() -> dict[str, Any]:
        """The broker, each topic's partitions and end offsets, and the processor's progress."""
        return status(cfg, gw)

    @app.get("/api/v1/topics", tags=["pipeline"], response_model=M.Topics, responses=responses(503))
    def topics() -> dict[str, Any]:
        """The pipeline's two topics."""
        out = []
        for name, kind in cfg.topics.items():
            parts = _kafka(gw.partitions, name)
            out.append({"name": name, "kind": kind, "partitions": len(parts) if parts is not None else None})
        return {"topics": out}

    @app.get(
        "/api/v1/topics/{topic}/messages",
        tags=["pipeline"],
        response_model=M.Messages,
        responses=responses(404, 422, 503),
    )
    def messages(
        topic: TOPIC,
        limit: Annotated[int, Query(ge=1, le=cfg.max_limit, description="records to return")] = 50,
        start: Annotated[
            str,
            Query(alias="from", max_length=20, description="latest, earliest, or an offset (per partition)"),
        ] = "latest",
        partition: Annotated[int | None, Query(ge=0, le=100000, description="one partition only")] = None,
    ) -> dict[str, Any]:
        """Records by offset, with no consumer group: the same query answers the same anywhere.

        ``latest``: the newest ``limit`` records across partitions; ``earliest``: the oldest;
        an offset: from that offset on in each partition (or the one ``partition``)."""
        _kind_of(cfg, topic)
        where = _parse_start(start)
        records, truncated = _read_latest(cfg, gw, topic, where, limit, partition)
        return {"topic": topic, "start": start, "limit": limit, "truncated": truncated, "messages": records}

    @app.post(
        "/api/v1/topics/{topic}/messages",
        tags=["pipeline"],
        response_model=M.Produced,
        status_code=201,
        dependencies=[Depends(_authorize)],
        responses=responses(400, 401, 404, 413, 422, 503),
        openapi_extra={"requestBody": _record_body()},
    )
    async def post_messages(topic: TOPIC, request: Request) -> dict[str, Any]:
        """Produce one record or a batch (acks=all, idempotent), keyed by ``customer_id``.

        Every record is checked against the data contract first; any bad field rejects the
        whole batch with a 422 naming each bad field of each record, and nothing is produced."""
        _kind_of(cfg, topic)
        records = _records_of(await _body(request, cfg.max_body_bytes), cfg.max_batch)
        delivered = await _produce(cfg, gw, topic, records)
        return {"topic": topic, "count": len(delivered), "records": delivered}


def _record_body() -> dict[str, Any]:
    record = {"type": "object", "additionalProperties": {"type": "string"}}
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        record,
                        {"type": "array", "items": record},
                    ]
                },
                "example": {
                    "transaction_id": "9f1c...",
                    "customer_id": "c-0001",
                    "event_time": "2026-12-01T12:00:00.000Z",
                    "amount": "42.50",
                    "currency": "BRL",
                    "category": "groceries",
                    "city": "Campinas",
                    "payment_method": "pix",
                    "merchant": "Mercado X",
                },
            }
        },
    }


def _dataset_routes(app: FastAPI, cfg: ApiConfig) -> None:
    @app.get("/api/v1/datasets", tags=["datasets"], response_model=M.DatasetList)
    def list_datasets() -> dict[str, Any]:
        """The sink's outputs and the columns each can be filtered on."""
        return {
            "available": cfg.sink is not None,
            "datasets": [{"name": d.name, "filters": list(d.filters)} for d in D.DATASETS.values()],
        }

    @app.get(
        "/api/v1/datasets/{name}",
        tags=["datasets"],
        response_model=M.Rows,
        responses=responses(404, 422, 503),
    )
    def dataset(
        name: Annotated[str, PathParam(max_length=64)],
        request: Request,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        year: Annotated[int | None, Query(ge=1, le=9999)] = None,
        month: Annotated[int | None, Query(ge=1, le=12)] = None,
        reason: Annotated[str | None, Query(max_length=64)] = None,
        topic: Annotated[str | None, Query(max_length=249)] = None,
        customer_id: Annotated[str | None, Query(max_length=200)] = None,
        category: Annotated[str | None, Query(max_length=64)] = None,
        city: Annotated[str | None, Query(max_length=200)] = None,
        state: Annotated[str | None, Query(max_length=64)] = None,
        age_band: Annotated[str | None, Query(max_length=64)] = None,
        record_type: Annotated[str | None, Query(max_length=32)] = None,
        payment_method: Annotated[str | None, Query(max_length=64)] = None,
        transaction_id: Annotated[str | None, Query(max_length=200)] = None,
    ) -> dict[str, Any]:
        """Rows of one output (transactions, customers, quarantine, or an aggregate), each
        filter an equality, at most ``limit`` rows and a bounded response size."""
        if name not in D.DATASETS:
            raise ProblemError(404, f"no dataset {name[:64]!r}; there are: {', '.join(D.DATASETS)}")
        if cfg.sink is None:
            raise ProblemError(503, "this instance has no access to the sink's volume")
        given = {
            "year": year,
            "month": month,
            "reason": reason,
            "topic": topic,
            "customer_id": customer_id,
            "category": category,
            "city": city,
            "state": state,
            "age_band": age_band,
            "payment_method": payment_method,
            "transaction_id": transaction_id,
            "record_type": record_type,
        }
        filters = {k: str(v) for k, v in given.items() if v is not None}
        try:
            return D.read(cfg.sink, name, filters, limit, cfg.max_response_bytes)
        except D.DatasetError as exc:
            raise ProblemError(
                422, "the request is invalid", [{"field": "query", "reason": "invalid", "message": str(exc)}]
            ) from None


def _dashboard_routes(app: FastAPI, cfg: ApiConfig, sampler: Sampler) -> None:
    @app.get(
        "/",
        tags=["dashboard"],
        response_class=HTMLResponse,
        responses={
            200: {
                "content": {"text/html": {}, "application/json": {"schema": M.Endpoints.model_json_schema()}}
            }
        },
    )
    def index(request: Request) -> Any:
        """The live dashboard; with ``Accept: application/json``, the list of endpoints (as the
        original service's ``GET /`` answered)."""
        accept = request.headers.get("accept", "")
        if "application/json" in accept and "text/html" not in accept:
            paths = sorted({r.path for r in app.routes if getattr(r, "include_in_schema", False)})
            return JSONResponse({"service": f"StreamPipeline API ({cfg.pipeline})", "endpoints": paths})
        return FileResponse(STATIC / "dashboard.html", media_type="text/html")

    @app.get("/api/v1/metrics/timeseries", tags=["dashboard"], response_model=M.Timeseries)
    def timeseries() -> dict[str, Any]:
        """Produced and processed records per second, lag and quarantine over the last minutes."""
        return {"interval_seconds": cfg.sample_every, "samples": sampler.history()}


def _legacy_routes(app: FastAPI, cfg: ApiConfig, gw: KafkaGateway) -> None:
    @app.get("/status", tags=["compatibility"], response_model=M.LegacyStatus)
    def legacy_status() -> dict[str, Any]:
        """Whether Kafka is reachable (the original service's ``GET /status``)."""
        ok = gw.reachable()
        return {
            "status": "ok" if ok else "unavailable",
            "kafka_connected": ok,
            "bootstrap_servers": cfg.bootstrap_servers,
        }

    @app.get(
        "/mensagens/{topic}",
        tags=["compatibility"],
        response_model=M.LegacyMessages,
        responses=responses(404, 422, 503),
    )
    def legacy_messages(
        topic: TOPIC, limite: Annotated[int, Query(ge=1, le=cfg.max_limit)] = 50
    ) -> dict[str, Any]:
        """The latest ``limite`` messages' values, as the original ``GET /mensagens/{topic}``."""
        _kind_of(cfg, topic)
        records, _ = _read_latest(cfg, gw, topic, "latest", limite, None)
        values = []
        for r in records:
            text = r["value"] if r["value_encoding"] == "utf-8" else None
            try:
                values.append(json.loads(text) if text is not None else r["value"])
            except (json.JSONDecodeError, RecursionError):
                values.append(text)
        return {"topic": topic, "total": len(values), "mensagens": values}

    @app.post(
        "/publicar/{topic}",
        tags=["compatibility"],
        response_model=M.LegacyPublished,
        dependencies=[Depends(_authorize)],
        responses=responses(400, 401, 404, 413, 422, 503),
        openapi_extra={"requestBody": _record_body()},
    )
    async def legacy_publish(topic: TOPIC, request: Request) -> dict[str, Any]:
        """Publish one JSON record (the original ``POST /publicar/{topic}``). Its ``key`` field,
        if any, is dropped and must equal ``customer_id``: the pipeline's key."""
        _kind_of(cfg, topic)
        body = await _body(request, cfg.max_body_bytes)
        if not isinstance(body, dict):
            raise ProblemError(422, "the body must be one JSON object")
        body = dict(body)
        key = body.pop("key", None)
        if key is not None and key != body.get("customer_id"):
            raise ProblemError(
                422,
                "the record is invalid",
                [
                    {
                        "record": 0,
                        "field": "key",
                        "reason": "key_mismatch",
                        "message": "the message key is the record's customer_id: key must equal it",
                    }
                ],
            )
        (delivered,) = await _produce(cfg, gw, topic, [body])
        return {
            "status": "ok",
            "topic": topic,
            "partition": delivered["partition"],
            "offset": delivered["offset"],
        }
