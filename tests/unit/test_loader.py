"""The manifest loader gives every input file a clear answer, never a traceback: random bytes,
random text and mutated valid manifests either load or raise one SpecError naming each
problem, in-process and through the ``streampipeline validate`` command. Also: YAML is read
with kubectl's scalar rules (go-yaml v2), and what a component would refuse at run time
(Faker, Kafka, Go, the API server) is refused here."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streampipeline.cli import main
from streampipeline.kubeyaml import MAX_DEPTH, resolve_plain
from streampipeline.locales import FAKER_LOCALES, FAKER_VERSION
from streampipeline.spec import SpecError, StreamPipeline, load_manifest, parse_quantity

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "k8s" / "examples" / "pipeline.yaml"
EXAMPLE_TEXT = EXAMPLE.read_text()
EXAMPLE_DOC = yaml.safe_load(EXAMPLE_TEXT)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("loader")


def check_file(path: Path) -> StreamPipeline | SpecError:
    """Load ``path``: a pipeline, or the SpecError (anything else fails the test)."""
    try:
        pipeline = load_manifest(path)
    except SpecError as exc:
        assert exc.errors, "a SpecError lists at least one problem"
        for error in exc.errors:
            assert error.path and error.message, error
        assert str(exc).startswith("invalid StreamPipeline")
        return exc
    # An accepted manifest is a real pipeline: it round-trips and serialises for the jobs.
    assert load_manifest(pipeline.to_manifest()) == pipeline
    json.dumps(pipeline.to_job_config(), allow_nan=False)
    return pipeline


def validate_in_process(path: Path) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", str(path)])
    return code, err.getvalue()


def write(workdir: Path, data: bytes) -> Path:
    path = workdir / "fuzz.yaml"
    path.write_bytes(data)
    return path


# --- fuzzing ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, child in node.items():
            out += _paths(child, (*prefix, key))
    return out


PATHS = _paths(EXAMPLE_DOC)


@st.composite
def mutated_documents(draw) -> dict:
    doc = copy.deepcopy(EXAMPLE_DOC)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        parent = doc
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue
        action = draw(st.sampled_from(["set", "delete", "add"]))
        if action == "set":
            parent[path[-1]] = draw(json_values)
        elif action == "delete":
            parent.pop(path[-1], None)
        else:
            parent[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
    return doc


@st.composite
def mutated_text(draw) -> bytes:
    data = bytearray(EXAMPLE_TEXT.encode())
    for _ in range(draw(st.integers(1, 8))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        chunk = draw(
            st.binary(min_size=1, max_size=4)
            | st.sampled_from(
                [
                    b":",
                    b"-",
                    b"{",
                    b"[",
                    b"\n  ",
                    b"&a",
                    b"*a",
                    b"<<",
                    b"!!",
                    b"'",
                    b'"',
                    b"#",
                    b"\t",
                    b"---\n",
                ]
            )
        )
        if op == "insert":
            data[pos:pos] = chunk
        elif op == "delete":
            del data[pos : pos + len(chunk)]
        else:
            data[pos : pos + len(chunk)] = chunk
    return bytes(data)


@FUZZ
@given(st.binary(max_size=3000))
def test_random_bytes_never_traceback(workdir, data):
    result = check_file(write(workdir, data))
    assert isinstance(result, SpecError)


@FUZZ
@given(st.text(max_size=500))
def test_random_text_never_tracebacks(workdir, text):
    check_file(write(workdir, text.encode("utf-8", "surrogatepass")))


@FUZZ
@given(mutated_documents())
def test_mutated_manifests_never_traceback(workdir, doc):
    check_file(write(workdir, yaml.safe_dump(doc, allow_unicode=True).encode()))
    check_file(write(workdir, json.dumps(doc).encode()))  # JSON is YAML too


@FUZZ
@given(mutated_text())
def test_mutated_yaml_text_never_tracebacks_in_the_cli(workdir, data):
    path = write(workdir, data)
    check_file(path)
    code, err = validate_in_process(path)
    assert code in (0, 2), err
    assert "Traceback" not in err


# --- files found with tracebacks (issue 11, section 7) -------------------------------------

HOSTILE = {
    "binary": (bytes(range(256)) * 4, "not UTF-8 text"),
    "latin-1": (
        EXAMPLE_TEXT.replace("payments flow", "paiements déroulent").encode("latin-1"),
        "not UTF-8 text",
    ),
    "nul": (EXAMPLE_TEXT.encode() + b"\0", "NUL byte"),
    "control": (b"apiVersion: \x07\n", "control character U+0007"),
    "deep-flow": (("x: " + "[" * 500 + "]" * 500).encode(), f"nested more than {MAX_DEPTH} levels"),
    "deep-block": ("a:\n" + "".join("  " * i + "b:\n" for i in range(1, 400))).encode(),
    "huge": (b"# " + b"x" * (4 * 2**20), "the API server accepts at most"),
    "utf-32": (EXAMPLE_TEXT.encode("utf-32"), "not UTF-8 text"),
}
HOSTILE["deep-block"] = (HOSTILE["deep-block"], f"nested more than {MAX_DEPTH} levels")


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_files_get_a_clear_error(workdir, case):
    data, message = HOSTILE[case]
    result = check_file(write(workdir, data))
    assert isinstance(result, SpecError)
    assert message in str(result)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_byte_order_marks_are_honoured_as_by_kubectl(workdir, encoding):
    assert load_manifest(write(workdir, EXAMPLE_TEXT.encode(encoding))) == load_manifest(EXAMPLE)


def test_cli_hostile_files_via_subprocess(workdir):
    """The real command: one clear line per file, exit code 2, no traceback."""
    files = []
    for case in ("binary", "latin-1", "nul", "deep-flow"):
        path = workdir / f"{case}.yaml"
        path.write_bytes(HOSTILE[case][0])
        files.append((path, HOSTILE[case][1]))
    directory = workdir / "a-directory.yaml"
    directory.mkdir(exist_ok=True)
    files.append((directory, "is a directory"))
    exbi = workdir / "exbi.yaml"
    exbi.write_text(EXAMPLE_TEXT.replace("size: 10Gi", "size: 1Ei"))
    for path, message in files:
        proc = subprocess.run(
            [sys.executable, "-m", "streampipeline.cli", "validate", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "streampipeline.cli", "validate", str(exbi)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("text", "value"), [("1Ei", 2**60), ("2Pi", 2 * 2**50), ("1E", 10**18), ("1e3", 1000)]
)
def test_quantity_suffixes(text, value):
    assert parse_quantity(text) == value


def _spec_errors(**spec_changes) -> list[str]:
    doc = copy.deepcopy(EXAMPLE_DOC)
    for dotted, value in spec_changes.items():
        *parents, last = dotted.split("/")
        node = doc
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    try:
        load_manifest(doc)
    except SpecError as exc:
        return [str(e) for e in exc.errors]
    return []


def test_faker_locales_are_fakers_own():
    faker_config = pytest.importorskip("faker.config")
    import faker

    assert faker.VERSION == FAKER_VERSION, "regenerate operator/streampipeline/locales.py"
    assert tuple(faker_config.AVAILABLE_LOCALES) == FAKER_LOCALES


def test_locale_faker_lacks_is_refused_with_a_suggestion():
    (error,) = _spec_errors(**{"spec/generator/locale": "pt_PT_X"})
    assert "spec.generator.locale" in error and "pt_PT" in error
    assert _spec_errors(**{"spec/generator/locale": "fil_PH"}) == []  # 3 letters: Faker has it


def test_topics_colliding_in_kafka_are_refused():
    errors = _spec_errors(
        **{"spec/kafka/topics/customers/name": "a.b", "spec/kafka/topics/transactions/name": "a_b"}
    )
    assert len(errors) == 1 and errors[0].startswith("spec.kafka.topics.transactions.name"), errors
    assert "'.' and '_'" in errors[0]


def test_durations_beyond_go_are_refused():
    (error,) = _spec_errors(**{"spec/processing/deduplicationWindow": "9999999999h"})
    assert "spec.processing.deduplicationWindow" in error and "at most 2562047h" in error
    assert _spec_errors(**{"spec/processing/deduplicationWindow": "2562047h"}) == []


def test_metadata_the_api_server_refuses_is_refused():
    (error,) = _spec_errors(**{"metadata/annotations": {"a": "x" * (256 * 1024)}})
    assert error.startswith("metadata.annotations") and "262144 bytes" in error
    assert _spec_errors(**{"metadata/annotations": {"a": "x" * (256 * 1024 - 1)}}) == []
    assert _spec_errors(**{"metadata/labels": {"a" * 64: "x"}})
    assert _spec_errors(**{"metadata/labels": {"a" * 63: "x"}}) == []
    assert _spec_errors(**{"metadata/labels": {("p" * 254) + "/a": "x"}})


# --- kubectl's YAML scalars (go-yaml v2), independently of PyYAML's YAML 1.1 ---------------

GO_YAML_SCALARS = [
    ("1e6", 1_000_000),  # a float to go-yaml, written by Go's JSON encoder as 1000000
    ("1.5e3", 1500),
    ("3.0", 3),
    ("0.5", 0.5),
    (".5", 0.5),
    ("1_000", 1000),
    ("0x1F", 31),
    ("0o17", 15),
    ("017", 15),
    ("09", 9),  # not octal: go-yaml falls back to a float
    ("+7", 7),
    ("-0", 0),
    ("1e400", "1e400"),  # overflows Go's ParseFloat: a string
    ("1:30", "1:30"),  # sexagesimal in PyYAML, a string to go-yaml
    ("2024-01-01", "2024-01-01"),
    ("y", True),
    ("N", False),
    ("on", True),
    ("OFF", False),
    ("~", None),
    ("", None),
    (".inf", math.inf),
    ("5s", "5s"),
    ("1Gi", "1Gi"),
    ("0x", "0x"),
    ("18446744073709551615", float(2**64)),  # beyond int64: a float to the API server
    ("9223372036854775807", 2**63 - 1),
]


@pytest.mark.parametrize(("text", "value"), GO_YAML_SCALARS, ids=[t or "empty" for t, _ in GO_YAML_SCALARS])
def test_plain_scalars_resolve_as_go_yaml_does(text, value):
    from streampipeline.kubeyaml import to_plain

    assert to_plain(resolve_plain(text)) == value
    assert type(to_plain(resolve_plain(text))) is type(value)


def test_1e6_is_a_number_as_for_kubectl():
    text = EXAMPLE_TEXT.replace("maxOffsetsPerTrigger: 100000", "maxOffsetsPerTrigger: 1e6")
    assert load_manifest(text).spec.processing.max_offsets_per_trigger == 1_000_000


def test_quoted_scalars_stay_strings():
    text = EXAMPLE_TEXT.replace("locale: pt_BR", "locale: 'y'")
    assert any(
        "spec.generator.locale" in e.path for e in pytest.raises(SpecError, load_manifest, text).value.errors
    )
