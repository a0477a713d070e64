"""The ``streampipeline`` command: ``run`` a manifest locally, ``validate`` it, and more.

Errors a user can fix (a bad manifest, a missing tool, an occupied output directory)
are printed as one clear message with exit code 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

from . import __version__
from .spec import SpecError, load_manifest


def _duration(text: str) -> float:
    from spjobs.processor.config import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _cmd_validate(args: argparse.Namespace) -> int:
    from .controller.status import driver_memory_check

    pipeline = load_manifest(Path(args.manifest))
    print(f"{args.manifest}: StreamPipeline {pipeline.name!r} is valid")
    ok, reason, message = driver_memory_check(pipeline)
    if ok is not True:  # advisory: on Kubernetes, not for `streampipeline run`
        print(f"warning: on Kubernetes, {message} ({reason})", file=sys.stderr)
    if args.show:
        print(json.dumps(pipeline.to_job_config(), indent=2))
    return 0


def _stop_cleanly_on_signals() -> None:
    """Ctrl-C and SIGTERM (``kill``, ``timeout``, a container stop) both stop a run cleanly,
    through the runner's KeyboardInterrupt path: without this, SIGTERM would kill the
    runner and orphan its broker and Spark job, and a run started with SIGINT ignored
    (a background job of a script, as CI may start it) could not be interrupted."""

    def _interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)


def _cmd_run(args: argparse.Namespace) -> int:
    from .local.runner import LocalRun, RunError, RunOptions, format_summary

    _stop_cleanly_on_signals()

    pipeline = load_manifest(Path(args.manifest))
    if args.records is not None and args.duration is not None:
        raise SystemExit("streampipeline run: give --records or --duration, not both")
    output = Path(args.output or f"output/{pipeline.name}")
    opts = RunOptions(
        output=output,
        records=args.records,
        duration=args.duration,
        summary_json=Path(args.summary_json) if args.summary_json else None,
        fresh=args.fresh,
        master=args.master,
        workers=args.workers,
        max_offsets_per_trigger=args.max_offsets_per_trigger,
        api=not args.no_api,
        api_port=args.api_port,
    )
    if opts.records is None and opts.duration is None:
        print("No --records or --duration: running until Ctrl-C.")
    run = LocalRun(pipeline, opts)
    try:
        summary = run.run()
    except RunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        run.close()
    print(format_summary(summary))
    if opts.summary_json:
        opts.summary_json.parent.mkdir(parents=True, exist_ok=True)
        opts.summary_json.write_text(json.dumps(summary.as_dict(), indent=2, sort_keys=True))
        print(f"\nSummary written to {opts.summary_json}")
    return 0 if summary.complete or summary.interrupted else 1


def _cmd_api(args: argparse.Namespace) -> int:
    from .api.config import ApiConfig, new_token, token_from_env
    from .api.server import serve

    if (args.manifest is None) == (args.config is None):
        raise SystemExit("streampipeline api: give a manifest or --config pipeline.json (one of them)")
    if args.config is not None:  # the operator's ConfigMap: the job config it rendered
        cfg = _read_job_config(Path(args.config))
    else:
        cfg = load_manifest(Path(args.manifest)).to_job_config()
    if args.bootstrap_servers:
        cfg["kafka"]["bootstrapServers"] = args.bootstrap_servers
    sink = None if args.no_sink else Path(args.sink or cfg["sink"]["path"])
    token = token_from_env()
    if token is None and args.no_new_token:
        print("Read-only: STREAMPIPELINE_API_TOKEN is not set, every write is refused (401).")
    elif token is None:
        token = new_token()
        print(f"API write token (for POST, shown once; set STREAMPIPELINE_API_TOKEN to choose it): {token}")
    api_cfg = ApiConfig.from_job_config(cfg, sink=sink, token=token)
    print(
        f"Serving pipeline {api_cfg.pipeline!r} on http://{args.host}:{args.port}/ "
        f"(Kafka {api_cfg.bootstrap_servers})",
        flush=True,
    )
    serve(api_cfg, host=args.host, port=args.port)
    return 0


def _read_job_config(path: Path) -> dict:
    """A resolved job config (``pipeline.json``, as the operator renders it), checked for the
    keys the service reads so that a wrong file is one clear error, not a KeyError."""
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
        kafka = cfg["kafka"]
        strings = [
            kafka["bootstrapServers"],
            *(kafka["topics"][r]["name"] for r in ("customers", "transactions")),
        ]
        if not all(isinstance(v, str) for v in strings) or not isinstance(cfg["sink"], dict):
            raise TypeError("kafka.bootstrapServers and the topic names must be strings, sink an object")
    except (ValueError, KeyError, TypeError) as exc:
        raise SystemExit(
            f"streampipeline api: {path} is not a pipeline job config ({type(exc).__name__}: {exc}); "
            "give the operator's pipeline.json or a manifest"
        ) from exc
    return cfg


def _cmd_render(args: argparse.Namespace) -> int:
    import yaml

    from .render import children
    from .settings import Settings

    pipeline = load_manifest(Path(args.manifest))
    print(yaml.safe_dump_all(children(pipeline, Settings.from_env()), sort_keys=False, width=100), end="")
    return 0


def _cmd_crd(args: argparse.Namespace) -> int:
    if args.rbac:
        from .rbac import rbac_yaml

        print(rbac_yaml(args.watch_namespace), end="")
    else:
        from .crd import crd_yaml

        print(crd_yaml(), end="")
    return 0


def _cmd_operator(args: argparse.Namespace) -> int:
    from .controller import run_operator

    return run_operator(
        namespaces=args.namespace or None,
        all_namespaces=args.all_namespaces,
        metrics_port=args.metrics_port,
        liveness=args.liveness,
        peering=args.peering,
        verbose=args.verbose,
    )


def _add_operator_commands(sub: argparse._SubParsersAction) -> None:
    rd = sub.add_parser("render", help="print the Kubernetes objects a StreamPipeline becomes (no cluster)")
    rd.add_argument("manifest")
    rd.set_defaults(func=_cmd_render)

    c = sub.add_parser("crd", help="print the StreamPipeline CustomResourceDefinition (or --rbac) as YAML")
    c.add_argument("--rbac", action="store_true", help="print the operator's RBAC objects instead")
    c.add_argument("--watch-namespace", metavar="NS", help="with --rbac: a Role for one watched namespace")
    c.set_defaults(func=_cmd_crd)

    o = sub.add_parser("operator", help="run the StreamPipeline operator (kopf) against the current cluster")
    scope = o.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace", "-n", action="append", metavar="NS", help="watch this namespace (repeatable)"
    )
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace")
    o.add_argument("--metrics-port", type=int, default=8080, help="Prometheus /metrics port (0: off)")
    o.add_argument(
        "--liveness",
        default="http://0.0.0.0:8081/healthz",
        help="kopf liveness endpoint URL ('' to disable)",
    )
    o.add_argument("--peering", metavar="NAME", help="use kopf peering NAME (default: standalone)")
    o.set_defaults(func=_cmd_operator)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="streampipeline", description="StreamPipeline: real-time ELT on Kafka + Spark"
    )
    p.add_argument("--version", action="version", version=f"streampipeline {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    v = sub.add_parser("validate", help="check a StreamPipeline manifest and report every bad field")
    v.add_argument("manifest")
    v.add_argument("--show", action="store_true", help="print the resolved job configuration")
    v.set_defaults(func=_cmd_validate)

    r = sub.add_parser(
        "run", help="run a StreamPipeline manifest on this machine (embedded Kafka, local Spark)"
    )
    r.add_argument("manifest")
    bound = r.add_mutually_exclusive_group()
    bound.add_argument("--records", type=int, help="stop after the generator sent N events (valid + invalid)")
    bound.add_argument("--duration", type=_duration, help="stop after generating for this long, e.g. 2m")
    r.add_argument("--output", help="where the Parquet goes (default: output/<name>)")
    r.add_argument("--summary-json", help="also write the summary as JSON to this file")
    r.add_argument("--fresh", action="store_true", help="replace an earlier run in --output")
    r.add_argument("--master", default="local[2]", help="Spark master (default local[2])")
    r.add_argument("--workers", type=int, default=1, help="generator processes")
    r.add_argument(
        "--max-offsets-per-trigger", type=int, help="override spec.processing.maxOffsetsPerTrigger"
    )
    r.add_argument("--no-api", action="store_true", help="do not serve the REST API and dashboard")
    r.add_argument("--api-port", type=int, default=0, help="the API's loopback port (default: a free one)")
    r.set_defaults(func=_cmd_run)

    a = sub.add_parser("api", help="serve the REST API and live dashboard for a pipeline's topics and sink")
    a.add_argument("manifest", nargs="?", help="a StreamPipeline manifest (or give --config)")
    a.add_argument(
        "--config", metavar="PIPELINE_JSON", help="a rendered job config instead (the operator's ConfigMap)"
    )
    a.add_argument(
        "--no-new-token",
        action="store_true",
        help="without STREAMPIPELINE_API_TOKEN refuse every write instead of generating a token",
    )
    a.add_argument("--host", default="127.0.0.1", help="bind address (default loopback; 0.0.0.0 in a pod)")
    a.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    a.add_argument("--bootstrap-servers", help="override the spec's Kafka bootstrap address")
    sink = a.add_mutually_exclusive_group()
    sink.add_argument("--sink", help="the sink's path (default: spec.sink.path)")
    sink.add_argument("--no-sink", action="store_true", help="serve Kafka endpoints only (no volume)")
    a.set_defaults(func=_cmd_api)
    _add_operator_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format='{"ts":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","msg":"%(message)s"}',
    )
    try:
        return int(args.func(args) or 0)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"error: {exc.filename or exc}: no such file", file=sys.stderr)
        return 2
    except IsADirectoryError as exc:
        print(f"error: {exc.filename or exc}: is a directory; give the manifest file", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.filename or ''}: cannot read it: {exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
