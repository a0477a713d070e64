"""Manifest bytes -> one YAML document, read the way ``kubectl`` reads it.

kubectl decodes a file with a UTF-8/UTF-16 byte-order mark honoured, parses YAML with
``sigs.k8s.io/yaml`` (go-yaml v2: YAML 1.1-ish plain scalars) and sends JSON to the API
server. A manifest must mean the same to ``streampipeline run``, so plain scalars are
resolved with go-yaml v2's rules, not PyYAML's: ``1e6`` and ``09`` are numbers,
``y``/``n`` are booleans, ``1:30`` and ``2024-01-01`` are strings; and a number that JSON
writes as an integer (``1e6``, ``3.0``) *is* one. Every problem is reported as a
:class:`~streampipeline.fields.FieldError` on ``<yaml>``, never as an exception.

Kept stricter than kubectl (and listed in the README): duplicate keys, several documents,
nesting deeper than any StreamPipeline needs, and files beyond the API server's request size.
"""

from __future__ import annotations

import codecs
import math
import re
from collections.abc import Iterator
from typing import Any, Final

import yaml

from .fields import _INVALID, FieldError, _Errors

__all__ = ["MAX_BYTES", "MAX_DEPTH", "decode_manifest", "load_document", "to_plain"]

MAX_BYTES: Final = 3 * 1024 * 1024  # the API server's request-body limit
MAX_DEPTH: Final = 64  # a StreamPipeline nests 6 levels; deeper input cannot be valid
_YAML: Final = "<yaml>"


def decode_manifest(data: bytes, errs: _Errors) -> str | object:
    """The text of a manifest file: UTF-8, or UTF-16 with a byte-order mark (kubectl honours
    it); ``_INVALID`` (reported) for other bytes."""
    if len(data) > MAX_BYTES:
        errs.add(_YAML, f"the file has {len(data)} bytes; the API server accepts at most {MAX_BYTES}")
        return _INVALID
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        errs.add(_YAML, "not UTF-8 text: the file is UTF-32 (re-save it as UTF-8)", 1)
        return _INVALID
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if data.startswith(bom):
            data, encoding = data[len(bom) :], codec
            break
    else:
        encoding = "utf-8"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        errs.add(
            _YAML,
            f"not {encoding.upper()} text: byte 0x{data[exc.start]:02x} at line {line}, column {column} "
            "(a manifest is UTF-8 text; re-save the file as UTF-8)",
            line,
        )
        return _INVALID


# --- go-yaml v2's resolution of plain (unquoted) scalars ------------------------------

_GO_MAP: Final[dict[str, Any]] = {
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), None),
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE"), True),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE"), False),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
}
_GO_INT: Final = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)")
_GO_UINT: Final = re.compile(r"(?:0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)")
_GO_FLOAT: Final = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_GO_DOT_FLOAT: Final = re.compile(r"\.[0-9]+(?:[eE][-+]?[0-9]+)?")
_TIMESTAMP: Final = re.compile(r"[0-9]{4}-")  # go-yaml keeps timestamps as strings (into interface{})


def _go_int(text: str) -> int:
    sign = -1 if text[0] == "-" else 1
    digits = text.lstrip("+-")
    if digits[:2] in ("0x", "0X", "0o", "0O", "0b", "0B"):
        return sign * int(digits, 0)
    if len(digits) > 1 and digits[0] == "0":
        return sign * int(digits, 8)
    return sign * int(digits)


def resolve_plain(text: str) -> Any:
    """What go-yaml v2 makes of an unquoted scalar (decoding into ``interface{}``)."""
    if text in _GO_MAP:
        return _GO_MAP[text]
    first = text[:1]
    if first == ".":
        return float(text) if _GO_DOT_FLOAT.fullmatch(text) else text
    if not (first.isascii() and (first.isdigit() or first in "+-")):
        return text
    plain = text.replace("_", "")
    if _GO_INT.fullmatch(plain):
        value = _go_int(plain)
        if -(2**63) <= value < 2**63:
            return value
    if _GO_UINT.fullmatch(plain):
        value = _go_int(plain)
        if value < 2**64:
            return value
    if _GO_FLOAT.fullmatch(plain):
        number = float(plain)
        if math.isfinite(number):  # Go's ParseFloat fails on overflow: then a string
            return number
    return text


def to_plain(value: Any) -> Any:
    """A decoded YAML scalar as JSON carries it to the API server: whole floats are integers
    (Go writes 1e6 as 1000000) and integers beyond int64 are floats (as the server decodes them)."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        return float(value)  # beyond int64: the API server decodes a float
    return value


def _key_string(key: Any) -> Any:
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return str(key)
    if isinstance(key, float):
        return str(int(key)) if math.isfinite(key) and key.is_integer() else repr(key)
    if key is None:
        return "null"
    return key


# --- the loader -------------------------------------------------------------------------


class LineDict(dict):
    """A mapping from YAML that remembers the line of each key."""

    lines: dict[Any, int]


class LineList(list):
    """A sequence from YAML that remembers the line of each item."""

    lines: list[int]


_PLAIN_TAG: Final = "tag:streampipeline.io,2026:plain"


class _Resolver(yaml.resolver.BaseResolver):
    """Plain scalars get one tag, resolved by :func:`resolve_plain`; ``<<`` stays a merge key."""

    def resolve(self, kind, value, implicit):
        if kind is yaml.ScalarNode and implicit[0]:
            return "tag:yaml.org,2002:merge" if value == "<<" else _PLAIN_TAG
        return super().resolve(kind, value, implicit)


class _Loader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, yaml.composer.Composer,
              yaml.constructor.SafeConstructor, _Resolver):  # fmt: skip
    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        _Resolver.__init__(self)
        self.duplicates: list[FieldError] = []

    def scan_to_next_token(self) -> None:
        """PyYAML's, but a tab separates tokens where go-yaml lets it: in flow context and
        after something on the line other than a block entry ``-`` or ``?`` (``key:\tvalue``);
        never as indentation."""
        if self.index == 0 and self.peek() == "\ufeff":
            self.forward()
        found = False
        while not found:
            while self.peek() == " " or (self.peek() == "\t" and self._tab_is_blank()):
                self.forward()
            if self.peek() == "#":
                while self.peek() not in "\0\r\n\x85\u2028\u2029":
                    self.forward()
            if self.scan_line_break():
                if not self.flow_level:
                    self.allow_simple_key = True
            else:
                found = True

    def _tab_is_blank(self) -> bool:
        if self.flow_level:
            return True
        start = max(self.buffer.rfind("\n", 0, self.pointer), self.buffer.rfind("\r", 0, self.pointer)) + 1
        before = self.buffer[start : self.pointer].rstrip(" \t")
        return bool(before) and before[-1] not in "-?"


def _construct_plain(loader: _Loader, node: yaml.ScalarNode) -> Any:
    return to_plain(resolve_plain(node.value))


def _construct_float(loader: _Loader, node: yaml.ScalarNode) -> Any:
    return to_plain(yaml.constructor.SafeConstructor.construct_yaml_float(loader, node))


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Iterator[LineDict]:
    data = LineDict()
    data.lines = {}
    yield data
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:  # explicit keys only: merged (<<) keys may be overridden
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = _key_string(loader.construct_object(key_node, deep=True))
        line = key_node.start_mark.line + 1
        if isinstance(key, str) and key in seen:
            loader.duplicates.append(
                FieldError(_YAML, f"duplicate key {key!r} (first defined on line {seen[key]})", line)
            )
        elif isinstance(key, str):
            seen[key] = line
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = _key_string(loader.construct_object(key_node, deep=True))
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                "found an unhashable key",
                key_node.start_mark,
            ) from None
        data[key] = loader.construct_object(value_node, deep=True)
        data.lines[key] = key_node.start_mark.line + 1


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> Iterator[LineList]:
    data = LineList()
    data.lines = []
    yield data
    for child in node.value:
        data.append(loader.construct_object(child, deep=True))
        data.lines.append(child.start_mark.line + 1)


_Loader.add_constructor(_PLAIN_TAG, _construct_plain)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)
_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


def _check_text(text: str, errs: _Errors) -> bool:
    """Characters YAML (and go-yaml) refuse, named with their position."""
    bad = re.search(r"[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]", text)
    if bad is None:
        return True
    line = text.count("\n", 0, bad.start()) + 1
    column = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
    what = "a NUL byte" if bad.group() == "\0" else f"the control character U+{ord(bad.group()):04X}"
    errs.add(_YAML, f"contains {what} at line {line}, column {column}: a manifest is text", line)
    return False


def _check_depth(text: str, errs: _Errors) -> bool:
    """Refuse deep nesting from the event stream (iterative) before composing (recursive)."""
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1
                errs.add(_YAML, f"nested more than {MAX_DEPTH} levels deep (at line {line})", line)
                return False
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
    return True


def load_document(text: str, errs: _Errors, what: str = "manifest") -> Any:
    """The single document in *text* (errors reported to *errs*; ``_INVALID`` if unusable)."""
    if not _check_text(text, errs):
        return _INVALID
    try:
        if not _check_depth(text, errs):
            return _INVALID
        loader = _Loader(text)
        try:
            documents = []
            while loader.check_data():
                documents.append(loader.get_data())
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        errs.add(_YAML, f"malformed YAML{where}: {problem}", line)
        return _INVALID
    except (yaml.YAMLError, ValueError, RecursionError) as exc:  # e.g. a bad !!binary or !!timestamp
        errs.add(_YAML, f"malformed YAML: {exc}")
        return _INVALID
    errs.items.extend(loader.duplicates)
    documents = [d for d in documents if d is not None]
    if not documents:
        errs.add(_YAML, f"the document is empty; expected one {what} manifest")
        return _INVALID
    if len(documents) > 1:
        errs.add(_YAML, f"expected exactly one YAML document (one {what}), found {len(documents)}")
        return _INVALID
    return documents[0]
