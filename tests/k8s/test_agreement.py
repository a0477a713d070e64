"""One answer to "is this manifest valid?": the API server (the CRD's schema and CEL rules,
with strict field validation) and the spec model agree on every case of a corpus generated
from the model's own declarations (each field at, just inside and just outside its bounds,
wrong types, missing required fields, unknown fields, cross-field and transition rules) and
on hypothesis mutations of the example, and both name the same field. The YAML rules of
the loader are checked against kubectl's own parsing of the same files.

Each case is one server-side dry run (no object is stored), over one HTTP connection.
"""

from __future__ import annotations

import codecs
import copy
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from conftest import EXAMPLE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streampipeline import fields as fw
from streampipeline.kubeyaml import load_document
from streampipeline.spec import (
    GROUP,
    PLURAL,
    VERSION,
    SpecError,
    check_update,
    load_manifest,
    spec_fields,
)
from streampipeline.spec import PipelineSpec as _PipelineSpec

pytestmark = [
    pytest.mark.k8s,
    pytest.mark.filterwarnings("ignore:HTTPResponse.getheaders:DeprecationWarning"),  # kubernetes client
]

NAMESPACE = "agreement"  # not watched by the operator
BASE: dict = yaml.safe_load(EXAMPLE.read_text())
BASE["metadata"]["namespace"] = NAMESPACE
DELETE = object()


@dataclass
class Case:
    id: str
    doc: dict
    field: str  # the field both must name when they refuse it


def _set(doc: dict, path: tuple, value: Any) -> dict:
    doc = copy.deepcopy(doc)
    node = doc
    for part in path[:-1]:
        node = node.setdefault(part, {})
    if value is DELETE:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return doc


# --- values at and around each kind's bounds ------------------------------------------------

STRINGS = ["", "a", "A", "a-b", "-a", "a.b", "a_b", ".", "..", "a b", "é", "/", "/a/../b", "/data/x"]
DURATIONS = [
    "0",
    "0s",
    "99ms",
    "100ms",
    "999ms",
    "1s",
    "1h30m",
    "1.5h",
    "1µs",
    "2562047h",
    "2562048h",
    "99999999999999h",
    "5",
    "5 s",
    "-1s",
    "1d",
]
SPARK_MEMORY = [
    "0m",
    "1m",
    "1k",
    "1023k",
    "1024k",
    "511m",
    "512m",
    "524287k",
    "524288k",
    "1g",
    "1gb",
    "0g",
    "99999999999g",
    "1Gi",
    "1G",
    "512",
]
QUANTITIES = ["0", 0, "1", 7, "100m", "128m", "1Mi", "1Ei", "2Pi", "1e3", "1E", "-1", "1.5Gi", ".5", "0.0"]
WRONG_TYPES = [True, "7", 1.5, [], {}]


def _numbers(kind: fw.Int | fw.Number) -> list[Any]:
    out: list[Any] = []
    step = 1 if isinstance(kind, fw.Int) else 0.001
    for bound, sign in ((kind.minimum, -1), (kind.maximum, 1)):
        if bound is not None:
            out += [bound, bound - sign * step, bound + sign * step]
    if isinstance(kind, fw.Number):
        out += [0.5, 1e300]
    return out


def _values(kind: fw.Kind) -> list[Any]:
    if isinstance(kind, (fw.Int, fw.Number)):
        return [*_numbers(kind), "1", True]
    if isinstance(kind, fw.Bool):
        return [True, False, "true", 1, "yes"]
    if isinstance(kind, fw.Duration):
        return [*DURATIONS, 5]
    if isinstance(kind, fw.SparkMemory):
        return [*SPARK_MEMORY, 1]
    if isinstance(kind, fw.Quantity):
        return [*QUANTITIES, 1.5, True]
    if isinstance(kind, fw.Str):
        out = [*STRINGS, 7, True]
        if kind.enum:
            out += [kind.enum[0], kind.enum[-1], kind.enum[0].upper()]
        if kind.max_length:
            out += ["a" * kind.max_length, "a" * (kind.max_length + 1)]
        return out
    if isinstance(kind, fw.ListOf):
        longest = list(range(1, (kind.max_items or 3) + 1))
        return [
            [],
            [1],
            [30, 60],
            [60, 30],
            [30, 30],
            [0],
            [150],
            [151],
            ["30"],
            longest,
            [*longest, 99],
            "30",
        ]
    if isinstance(kind, fw.MapOf):
        return [{}, {"a.b": "x"}, {"Bad Key": "x"}, {"a": 1}, {"a": True}, []]
    if isinstance(kind, fw.Obj):
        return [None, "x", [], {"unknownField": 1}]
    raise AssertionError(f"no values for {kind!r}")


def _field_cases(cls: type, path: tuple) -> Iterator[Case]:
    for f in spec_fields(cls):
        child = (*path, f.yaml)
        name = ".".join(child)
        if f.info.required:
            yield Case(f"{name}=<missing>", _set(BASE, child, DELETE), name)
        for i, value in enumerate(_values(f.kind)):
            if value is None:
                continue
            yield Case(f"{name}[{i}]={value!r:.40}", _set(BASE, child, value), name)
        if isinstance(f.kind, fw.Obj):
            yield from _field_cases(f.kind.cls, child)


def _corpus() -> list[Case]:
    cases = list(_field_cases(_PipelineSpec, ("spec",)))
    topics = ("spec", "kafka", "topics")
    cross = {
        "same-topic-names": {"customers": {"name": "t"}, "transactions": {"name": "t"}},
        "colliding-topic-names": {"customers": {"name": "a.b"}, "transactions": {"name": "a_b"}},
        "topic-name-equals-default": {"transactions": {"name": "payments-customers"}},
        "topic-collides-with-default": {"transactions": {"name": "payments_customers"}},
    }
    for case_id, value in cross.items():
        cases.append(Case(case_id, _set(BASE, topics, value), "spec.kafka.topics.transactions.name"))
    # spec.api.mountSink only with an existing (ReadWriteMany) claim, not the operator's own.
    mount = _set(BASE, ("spec", "api"), {"enabled": True, "mountSink": True})
    for claim in (DELETE, "shared-rwx"):
        doc = _set(mount, ("spec", "sink", "volume", "existingClaim"), claim)
        cases.append(Case(f"api-mount-sink-claim={claim is not DELETE}", doc, "spec.api.mountSink"))
    resources = ("spec", "generator", "resources")
    for res, (low, high) in {"cpu": ("100m", "1"), "memory": ("128Mi", "1Gi")}.items():
        for req, lim in ((low, high), (high, low), (high, high)):
            doc = _set(BASE, resources, {"requests": {res: req}, "limits": {res: lim}})
            cases.append(Case(f"resources-{res}-{req}-{lim}", doc, f"spec.generator.resources.limits.{res}"))
    meta = ("metadata",)
    for name in ["p" * 40, "p" * 41, "pay.ments", "Payments", "-p", "p-", "p"]:
        cases.append(Case(f"name={name}", _set(BASE, (*meta, "name"), name), "metadata.name"))
    labels = [
        {"a" * 63: "x"},
        {"a" * 64: "x"},
        {"p" * 253 + "/a": "x"},
        {"p" * 254 + "/a": "x"},
        {"a": "v" * 63},
        {"a": "v" * 64},
        {"a": "-v"},
        {"a": ""},
        {"a/b/c": "x"},
        {"A.b/c": "x"},
    ]
    for i, value in enumerate(labels):
        cases.append(Case(f"labels[{i}]", _set(BASE, (*meta, "labels"), value), "metadata.labels"))
    big = 256 * 1024
    annotations = [{"a": "x" * (big - 1)}, {"a": "x" * big}, {"a": "x" * (big - 2), "b": ""}, {"a b": "x"}]
    for i, value in enumerate(annotations):
        cases.append(
            Case(f"annotations[{i}]", _set(BASE, (*meta, "annotations"), value), "metadata.annotations")
        )
    cases.append(Case("unknown-top-level", _set(BASE, ("specs",), {}), "specs"))
    cases.append(Case("spec-missing", _set(BASE, ("spec",), DELETE), "spec"))
    return cases


CORPUS = _corpus()


# --- the two verdicts -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(cp):
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=str(cp.kubeconfig))
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": NAMESPACE}})
    try:
        yield client.CustomObjectsApi(api_client)
    finally:
        api_client.close()


def server_verdict(api, doc: dict) -> str | None:
    """None if the API server would store ``doc``, else its error text (fields included)."""
    from kubernetes.client.exceptions import ApiException

    try:
        api.create_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, doc, dry_run="All", field_validation="Strict"
        )
    except ApiException as exc:
        if exc.status not in (400, 422):
            raise
        try:
            body = json.loads(exc.body)
        except (TypeError, ValueError):
            return str(exc.body)
        causes = (body.get("details") or {}).get("causes") or []
        return "\n".join(
            [body.get("message", ""), *(f"{c.get('field')}: {c.get('message')}" for c in causes)]
        )
    return None


def model_verdict(doc: dict) -> list[str] | None:
    """None if the model accepts ``doc`` (read from JSON text, as a file would be), else the
    paths of its errors."""
    try:
        load_manifest(json.dumps(doc, ensure_ascii=False))
    except SpecError as exc:
        return [e.path for e in exc.errors]
    return None


def _names(field: str, text: str) -> bool:
    """The server names ``field``, or the map holding it (``metadata.labels`` for a label)."""
    return field in text or (field.count(".") > 1 and field.rsplit(".", 1)[0] + ":" in text)


def disagreement(api, case: Case) -> str | None:
    server, model = server_verdict(api, case.doc), model_verdict(case.doc)
    if (server is None) != (model is None):
        who = (
            "the API server accepts, the model refuses"
            if server is None
            else "the model accepts, the API server refuses"
        )
        return f"{case.id}: {who}: server={server!r:.300} model={model}"
    if server is not None and model is not None:
        named = [p.split("[")[0] for p in model]
        if not any(_names(p, server) for p in named):
            return f"{case.id}: the API server does not name the model's {model}: {server:.300}"
    return None


def test_corpus_is_generated_from_the_model():
    assert len(CORPUS) > 300
    names = {c.field for c in CORPUS}
    for f in spec_fields(_PipelineSpec):
        assert f"spec.{f.yaml}" in names


def test_api_server_and_model_agree_on_the_corpus(api):
    problems = [p for p in (disagreement(api, case) for case in CORPUS) if p]
    assert not problems, f"{len(problems)} of {len(CORPUS)} cases disagree:\n" + "\n".join(problems)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, child in node.items():
            out += _paths(child, (*prefix, key))
    return [p for p in out if p[:2] != ("metadata", "namespace")]


PATHS = _paths(BASE)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_api_server_and_model_agree_on_mutations(api, data):
    doc = copy.deepcopy(BASE)
    touched = []
    for _ in range(data.draw(st.integers(1, 2))):
        path = data.draw(st.sampled_from(PATHS))
        value = data.draw(
            json_values | st.sampled_from([v for k in (DURATIONS, SPARK_MEMORY, QUANTITIES) for v in k])
        )
        parent = doc
        for part in path[:-1]:
            parent = parent.get(part) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue  # an earlier mutation replaced an ancestor
        if value is None:
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = value
        touched.append(".".join(path))
    server, model = server_verdict(api, doc), model_verdict(doc)
    assert (server is None) == (model is None), f"{touched}: server={server!r:.400} model={model}"


# --- updates: the CEL transition rules and check_update() ------------------------------------

UPDATES = [
    ("partitions-shrink", ("spec", "kafka", "topics", "customers", "partitions"), 2, True),
    ("partitions-grow", ("spec", "kafka", "topics", "customers", "partitions"), 4, False),
    ("topic-rename", ("spec", "kafka", "topics", "transactions", "name"), "renamed", True),
    (
        "topic-name-set-to-its-default",
        ("spec", "kafka", "topics", "customers", "name"),
        "upd-customers",
        True,
    ),
    ("cluster-change", ("spec", "kafka", "cluster"), "other-cluster", True),
    ("cluster-same", ("spec", "kafka", "cluster"), "dev-cluster", False),
    ("rate-change", ("spec", "generator", "ratePerSecond"), 7, False),
]


def test_transition_rules_agree(api):
    old_doc = copy.deepcopy(BASE)
    old_doc["metadata"]["name"] = "upd"
    live = api.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, old_doc)
    old = load_manifest(old_doc)
    problems = []
    for case_id, path, value, refused in UPDATES:
        new_doc = _set(live, path, value)
        try:
            api.replace_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, PLURAL, "upd", new_doc, dry_run="All", field_validation="Strict"
            )
            server = None
        except Exception as exc:  # ApiException: the update is refused
            server = str(getattr(exc, "body", exc))
        try:
            check_update(old, load_manifest(_set(old_doc, path, value)))
            model = None
        except SpecError as exc:
            model = [e.path for e in exc.errors]
        field = ".".join(path)
        if (server is not None) != refused or (model is not None) != refused:
            problems.append(f"{case_id}: server={server!r:.200} model={model}")
        elif refused and (field not in server or field not in model):
            problems.append(f"{case_id}: not both name {field}: server={server!r:.200} model={model}")
    assert not problems, "\n".join(problems)


# --- YAML as kubectl reads it -----------------------------------------------------------------

SCALARS = [
    "1e6",
    "1E6",
    "1.5e3",
    "3.0",
    "0.5",
    ".5",
    "1_000",
    "0x1F",
    "0o17",
    "017",
    "09",
    "+7",
    "-0",
    "1e400",
    "1:30",
    "2024-01-01",
    "2024-01-01T10:00:00Z",
    "y",
    "Y",
    "n",
    "yes",
    "No",
    "on",
    "OFF",
    "true",
    "False",
    "~",
    "null",
    "",
    "5s",
    "1Gi",
    "0x",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999",
    "-9223372036854775808",
    "0b101",
    "'quoted'",
    '"1e6"',
    "1.0e+6",
    "=",
    "{<<: {a: 1}, b: 2}",
    "{a: 1, b: [1, 2]}",
    "!!str 5",
    "!!float 7",
    "0.1",
    "1e-7",
    "12e",
    "1.2.3",
]


def _random_scalars(n: int = 150) -> list[str]:
    """Number-like plain scalars, where YAML libraries differ most (a fixed seed: one batch)."""
    import random

    rng = random.Random(15)
    alphabet = "0123456789012345.eE+-_xXoObB~yYnN"
    return [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))).lstrip("-").lstrip("~") or "0"
        for _ in range(n)
    ]


def _json_stream(text: str) -> list[dict]:
    """kubectl -o json prints one JSON document per object."""
    decoder, out, pos = json.JSONDecoder(), [], 0
    while pos < len(text.rstrip()):
        obj, end = decoder.raw_decode(text, pos)
        out += obj.get("items", [obj]) if obj.get("kind") == "List" else [obj]
        pos = end
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def test_loader_reads_yaml_as_kubectl_does(cp, tmp_path):
    """kubectl's client-side parse (sigs.k8s.io/yaml, then JSON) of each scalar equals the loader's."""
    scalars = SCALARS + _random_scalars()
    for i, scalar in enumerate(scalars):
        (tmp_path / f"{i:03d}.yaml").write_text(
            f"apiVersion: {GROUP}/{VERSION}\nkind: StreamPipeline\n"
            f"metadata:\n  name: yaml-{i}\n  namespace: {NAMESPACE}\nspec:\n  value: {scalar}\n"
        )
    proc = cp.kubectl("create", "--dry-run=client", "--validate=false", "-o", "json", "-f", str(tmp_path))
    items = {item["metadata"]["name"]: item for item in _json_stream(proc.stdout)}
    problems = []
    for i, scalar in enumerate(scalars):
        errs = fw._Errors()
        ours = load_document((tmp_path / f"{i:03d}.yaml").read_text(), errs)
        ours_json = json.loads(
            json.dumps(ours["spec"].get("value") if ours is not fw._INVALID else "<error>")
        )
        theirs = items[f"yaml-{i}"]["spec"].get("value")
        same = ours_json == theirs and type(ours_json) is type(theirs)
        numbers = [v for v in (theirs, ours_json) if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(numbers) == 2 and max(map(abs, numbers)) >= 2**63:  # Go prints 1.8e19 as 18446744073709552000
            same = math.isclose(theirs, ours_json)
        if not same:
            problems.append(f"{scalar!r}: kubectl {theirs!r}, loader {ours_json!r} {errs.items}")
    assert not problems, "\n".join(problems)


def test_duplicate_keys_and_documents(cp, tmp_path):
    """What kubectl does with a duplicate key and two documents in one file; the loader refuses
    both (README lists the difference)."""
    dup = tmp_path / "dup.yaml"
    dup.write_text(EXAMPLE.read_text().replace("  name: payments", "  name: payments\n  name: again", 1))
    proc = cp.kubectl("create", "--dry-run=client", "--validate=false", "-o", "json", "-f", str(dup))
    assert json.loads(proc.stdout)["metadata"]["name"] == "again"  # kubectl keeps the last value
    with pytest.raises(SpecError, match="duplicate key 'name'"):
        load_manifest(dup)
    two = tmp_path / "two.yaml"
    two.write_text(
        EXAMPLE.read_text() + "\n---\n" + EXAMPLE.read_text().replace("name: payments", "name: p2")
    )
    proc = cp.kubectl("create", "--dry-run=client", "--validate=false", "-o", "json", "-f", str(two))
    assert len(_json_stream(proc.stdout)) == 2  # kubectl applies both
    with pytest.raises(SpecError, match="expected exactly one YAML document"):
        load_manifest(two)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be"])
def test_byte_order_marks_as_kubectl_reads_them(cp, tmp_path, encoding):
    """kubectl honours a UTF-8 or UTF-16 byte-order mark; so does the loader, to the same object."""
    path = tmp_path / "bom.yaml"
    text = EXAMPLE.read_text().replace("namespace: streampipeline", f"namespace: {NAMESPACE}")
    data = text.encode(encoding)
    path.write_bytes(codecs.BOM_UTF16_BE + data if encoding == "utf-16-be" else data)
    proc = cp.kubectl("create", "--dry-run=client", "--validate=false", "-o", "json", "-f", str(path))
    theirs = json.loads(proc.stdout)
    ours = load_manifest(path).to_manifest()
    assert theirs["metadata"]["name"] == ours["metadata"]["name"]
    assert load_manifest(theirs) == load_manifest(path)


_EDITS = [
    ":",
    " ",
    "-",
    "{",
    "}",
    "[",
    "]",
    ",",
    "\n",
    "\n  ",
    "&a ",
    "*a",
    "<<: *a",
    "!!str ",
    "'",
    '"',
    "#",
]
_EDITS += ["---\n", "1e6", "y", "~", "0x1", "\\", "|", ">", "? "]


@st.composite
def _mutated_yaml(draw) -> str:
    """The example's text with a few YAML-significant edits (kind and apiVersion kept, so that
    kubectl can map the object)."""
    text = EXAMPLE.read_text().replace("namespace: streampipeline", f"namespace: {NAMESPACE}")
    head, body = text.split("metadata:", 1)
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(body)))
        chunk = draw(st.sampled_from(_EDITS))
        body = body[:pos] + chunk + body[pos + draw(st.integers(0, 2)) :]
    return head + "metadata:" + body


# Tabs are left out: a tab inside a plain scalar (`a\tb`) is text to kubectl and an error to the
# loader (README). Derandomized: the same 60 files every run, so CI does not depend on luck.
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(text=_mutated_yaml())
def test_mutated_yaml_parses_as_kubectl_parses(cp, tmp_path, text):
    """kubectl and the loader both refuse a mutated file, or both read the same object."""
    path = tmp_path / "mutated.yaml"
    path.write_text(text)
    proc = cp.kubectl(
        "create", "--dry-run=client", "--validate=false", "-o", "json", "-f", str(path), check=False
    )
    errs = fw._Errors()
    ours = load_document(text, errs)
    ours_ok = ours is not fw._INVALID and not errs.items
    if proc.returncode != 0 and "resource mapping not found" in proc.stderr:
        assert not ours_ok or not isinstance(ours, dict) or ours.get("kind") != "StreamPipeline"
        return  # an edit broke the kind or apiVersion: kubectl cannot map it; the model refuses it
    if proc.returncode == 0 and errs.items and all("duplicate key" in e.message for e in errs.items):
        return  # by design (README): kubectl keeps the last value, the loader refuses the file
    if proc.returncode != 0 or not ours_ok:
        assert proc.returncode != 0 and not ours_ok, (
            f"kubectl: {proc.stderr.strip()[:300]}; loader: {errs.items}"
        )
        return
    expected = json.loads(json.dumps(ours, default=str))
    (theirs,) = _json_stream(proc.stdout)
    meta = expected.get("metadata")
    if not (isinstance(meta, dict) and meta.get("namespace") is not None):  # kubectl fills in its own
        theirs["metadata"].pop("namespace", None)
        if "metadata" not in expected and not theirs["metadata"]:
            del theirs["metadata"]
    assert expected == theirs
