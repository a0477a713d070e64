"""The ``streampipelines.streampipeline.io`` CustomResourceDefinition, generated.

The ``spec`` schema is :func:`streampipeline.spec.openapi_schema`; this module adds what
only the API server can check (CEL ``x-kubernetes-validations``: immutable and grow-only
fields, and the cross-field checks :func:`~streampipeline.spec.parse_spec` does that a
plain OpenAPI schema cannot express), the ``status`` schema, printer columns and the
status subresource.  ``streampipeline crd`` prints it; ``k8s/crd/`` holds the output and
a unit test keeps the two identical.

Every CEL message starts with the full field path, so ``kubectl apply`` errors name
the field even where the API server reports the rule on a parent object.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from .fields import attach_rules
from .spec import GROUP, KIND, MAX_NAME_LENGTH, PLURAL, SPEC_KIND, VERSION, openapi_schema

__all__ = [
    "CONDITION_TYPES",
    "CRD_NAME",
    "PHASES",
    "crd_manifest",
    "crd_yaml",
    "status_schema",
]

CRD_NAME = f"{PLURAL}.{GROUP}"
SINGULAR = "streampipeline"
PHASES = ("Pending", "Provisioning", "Running", "Degraded", "Suspended", "Failed", "Deleting")
CONDITION_TYPES = ("TopicsReady", "GeneratorReady", "ProcessorRunning", "Ready", "DriverMemorySufficient")
TOPIC_ROLES = ("customers", "transactions")


def _rule(rule: str, message: str, *, field_path: str | None = None, reason: str | None = None) -> dict:
    out: dict[str, Any] = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    if reason:
        out["reason"] = reason
    return out


def _add(node: dict[str, Any], *rules: dict[str, Any]) -> None:
    node.setdefault("x-kubernetes-validations", []).extend(rules)


def spec_schema() -> dict[str, Any]:
    """``openapi_schema()`` plus CEL rules: every check the model makes beyond the OpenAPI
    schema and the transition rules (immutable and grow-only fields), all generated from the
    same declarations (:func:`~streampipeline.fields.attach_rules`)."""
    spec = copy.deepcopy(openapi_schema())
    attach_rules(SPEC_KIND, spec, "spec")
    _topic_rules(spec["properties"]["kafka"]["properties"]["topics"])
    return spec


def _is_default_name(name: str, role: str) -> str:
    """CEL at the root: ``name == metadata.name + '-<role>'``, without building the string
    (the CEL cost estimate of an unbounded metadata.name would exceed the budget)."""
    suffix = f"-{role}"
    return (
        f"({name}.endsWith('{suffix}') && size({name}) == size(self.metadata.name) + {len(suffix)} "
        f"&& {name}.startsWith(self.metadata.name))"
    )


def _topic_names_differ() -> str:
    c, t = "self.spec.kafka.topics.customers", "self.spec.kafka.topics.transactions"
    return (
        f"!has(self.spec.kafka.topics) || !has({c}) || !has({t}) || "
        f"(has({c}.name) && has({t}.name) ? {c}.name != {t}.name : "
        f"has({c}.name) ? !{_is_default_name(c + '.name', 'transactions')} : "
        f"has({t}.name) ? !{_is_default_name(t + '.name', 'customers')} : true)"
    )


def _topic_rules(topics: dict[str, Any]) -> None:
    """Kafka's '.'/'_' collision of two set names (on ``spec.kafka.topics``: bounded strings, a
    small CEL cost). A default name ``<metadata.name>-<role>`` has neither character, so it
    collides only with an equal name: the root rule covers that."""
    both = "has(self.customers) && has(self.transactions)"
    both += " && has(self.customers.name) && has(self.transactions.name)"
    _add(
        topics,
        _rule(
            f"!({both}) || self.customers.name == self.transactions.name || "
            "self.customers.name.replace('.', '_') != self.transactions.name.replace('.', '_')",
            "spec.kafka.topics.transactions.name collides with spec.kafka.topics.customers.name: Kafka "
            "treats '.' and '_' as the same in topic names",
            field_path=".transactions.name",
        ),
    )


def _root_rules() -> list[dict[str, Any]]:
    return [
        _rule(
            f"size(self.metadata.name) <= {MAX_NAME_LENGTH}",
            f"metadata.name must be at most {MAX_NAME_LENGTH} characters "
            "(child resource names append suffixes)",
        ),
        _rule(
            "self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
            "metadata.name must be a DNS-1123 label (lower-case letters, digits and '-', no dots)",
        ),
        _rule(
            _topic_names_differ(),
            "spec.kafka.topics.transactions.name must differ from the customers topic "
            "(spec.kafka.topics.customers.name, default <metadata.name>-customers)",
            field_path=".spec.kafka.topics.transactions.name",
        ),
    ]


def status_schema() -> dict[str, Any]:
    condition = {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": {"type": "string", "enum": list(CONDITION_TYPES)},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "reason": {"type": "string"},
            "message": {"type": "string"},
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "observedGeneration": {"type": "integer", "format": "int64"},
        },
    }
    return {
        "description": "Observed state, written by the operator (kopf keeps its bookkeeping here too).",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {
            "phase": {"type": "string", "enum": list(PHASES)},
            "message": {"type": "string", "description": "Why the pipeline is not Ready, if it is not."},
            "observedGeneration": {"type": "integer", "format": "int64"},
            "topics": {"type": "string", "description": "Ready KafkaTopics, e.g. 2/2."},
            "generator": {"type": "string", "description": "Available/desired generator pods, e.g. 1/1."},
            "processor": {
                "type": "string",
                "description": "The SparkApplication's state (RUNNING, SUBMITTED...), or - if absent.",
            },
            "children": {
                "type": "object",
                "description": "Names of the objects this pipeline owns.",
                "properties": {
                    "kafkaTopics": {"type": "array", "items": {"type": "string"}},
                    "configMap": {"type": "string"},
                    "persistentVolumeClaim": {"type": "string"},
                    "deployment": {"type": "string"},
                    "sparkApplication": {"type": "string"},
                    "apiDeployment": {"type": "string"},
                    "apiService": {"type": "string"},
                },
            },
            "conditions": {
                "type": "array",
                "items": condition,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
        },
    }


def _printer_columns() -> list[dict[str, Any]]:
    def col(name: str, type_: str, path: str, priority: int = 0, description: str = "") -> dict:
        out: dict[str, Any] = {"name": name, "type": type_, "jsonPath": path}
        if description:
            out["description"] = description
        if priority:
            out["priority"] = priority
        return out

    return [
        col("Phase", "string", ".status.phase"),
        col("Rate", "number", ".spec.generator.ratePerSecond", description="events/s per generator pod"),
        col("Topics", "string", ".status.topics", description="ready KafkaTopics"),
        col("Generator", "string", ".status.generator", description="available/desired generator pods"),
        col("Processor", "string", ".status.processor", description="SparkApplication state"),
        col("Age", "date", ".metadata.creationTimestamp"),
        col("Cluster", "string", ".spec.kafka.cluster", 1),
        col("Replicas", "integer", ".spec.generator.replicas", 1),
        col("Suspended", "boolean", ".spec.suspend", 1),
        col("Ready", "string", '.status.conditions[?(@.type=="Ready")].status', 1),
        col("Message", "string", ".status.message", 1),
    ]


def crd_manifest() -> dict[str, Any]:
    """The CustomResourceDefinition as a dict (apiextensions.k8s.io/v1)."""
    root = {
        "type": "object",
        "description": "A real-time ELT pipeline: Kafka topics, a data generator and a Spark "
        "Structured Streaming job writing Parquet.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema(),
            "status": status_schema(),
        },
        "x-kubernetes-validations": _root_rules(),
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {
                "app.kubernetes.io/name": "streampipeline",
                "app.kubernetes.io/part-of": "streampipeline",
            },
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "plural": PLURAL,
                "singular": SINGULAR,
                "kind": KIND,
                "listKind": f"{KIND}List",
                "shortNames": ["sp"],
                "categories": ["streampipeline"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": root},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": _printer_columns(),
                }
            ],
        },
    }


HEADER = "# Generated by `streampipeline crd` from operator/streampipeline/crd.py -- do not edit.\n"


def crd_yaml() -> str:
    return HEADER + yaml.safe_dump(crd_manifest(), sort_keys=False, allow_unicode=True, width=100)
