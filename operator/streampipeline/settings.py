"""Operator configuration, read from ``STREAMPIPELINE_*`` environment variables.

Everything that is a property of the installation rather than of one pipeline (which
images to run, which ServiceAccount the Spark driver uses, which namespaces to watch)
lives here, so that :mod:`streampipeline.render` stays a pure function of
``(pipeline, settings)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

__all__ = ["ENV", "Settings"]

# field name -> environment variable
ENV: dict[str, str] = {
    "generator_image": "STREAMPIPELINE_GENERATOR_IMAGE",
    "spark_image": "STREAMPIPELINE_SPARK_IMAGE",
    "api_image": "STREAMPIPELINE_API_IMAGE",
    "spark_main_file": "STREAMPIPELINE_SPARK_MAIN_FILE",
    "spark_service_account": "STREAMPIPELINE_SPARK_SERVICE_ACCOUNT",
    "spark_version": "STREAMPIPELINE_SPARK_VERSION",
    "image_pull_policy": "STREAMPIPELINE_IMAGE_PULL_POLICY",
    "namespaces": "STREAMPIPELINE_NAMESPACES",
}

_PULL_POLICIES = ("Always", "IfNotPresent", "Never")


@dataclass(frozen=True)
class Settings:
    generator_image: str = "ghcr.io/streampipeline/generator:0.1.0"
    spark_image: str = "ghcr.io/streampipeline/spark:0.1.0"
    # The REST service (spec.api): the operator image carries the `api` extra.
    api_image: str = "ghcr.io/streampipeline/operator:0.1.0"
    spark_main_file: str = "local:///opt/streampipeline/processor_main.py"
    spark_service_account: str = "streampipeline-spark"
    spark_version: str = "4.1.1"
    image_pull_policy: str = "IfNotPresent"
    namespaces: tuple[str, ...] = ()  # empty: cluster-wide

    def __post_init__(self) -> None:
        if self.image_pull_policy not in _PULL_POLICIES:
            raise ValueError(
                f"{ENV['image_pull_policy']} must be one of {', '.join(_PULL_POLICIES)}, "
                f"got {self.image_pull_policy!r}"
            )
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str) and not value.strip():
                raise ValueError(f"{ENV[f.name]} must not be empty")

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Defaults overridden by the ``STREAMPIPELINE_*`` variables that are set and non-empty."""
        env = os.environ if environ is None else environ
        kwargs: dict[str, object] = {}
        for name, var in ENV.items():
            raw = env.get(var, "").strip()
            if not raw:
                continue
            if name == "namespaces":
                kwargs[name] = tuple(ns.strip() for ns in raw.split(",") if ns.strip())
            else:
                kwargs[name] = raw
        return cls(**kwargs)  # type: ignore[arg-type]
