"""A small generic Kubernetes client over ``kubernetes.client.ApiClient``.

Works for any kind the operator touches (core, apps and custom resources) without the
dynamic client's discovery: server-side apply, get, create, merge-patch and delete.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException

__all__ = ["FIELD_MANAGER", "ApiException", "ConfigError", "Kube", "load_api_client"]


class ConfigError(RuntimeError):
    """No usable Kubernetes client configuration (neither in-cluster nor a kubeconfig)."""


FIELD_MANAGER = "streampipeline-operator"

PLURALS = {
    "ConfigMap": "configmaps",
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "Deployment": "deployments",
    "Service": "services",
    "KafkaTopic": "kafkatopics",
    "SparkApplication": "sparkapplications",
    "StreamPipeline": "streampipelines",
}


def load_api_client() -> client.ApiClient:
    """In-cluster config if available, else ``$KUBECONFIG`` / ``~/.kube/config``.

    Raises ConfigError, saying what to provide, when neither is usable.
    """
    try:
        config.load_incluster_config()
        return client.ApiClient()
    except config.ConfigException as in_cluster:
        cfg = client.Configuration()
        try:
            config.load_kube_config(client_configuration=cfg)
        except (config.ConfigException, OSError, ValueError, TypeError) as exc:
            raise ConfigError(
                "cannot configure the Kubernetes client: not in a cluster "
                f"({in_cluster}) and no usable kubeconfig ({exc}); run the operator in a pod with "
                "its ServiceAccount, or set KUBECONFIG (or ~/.kube/config) to a cluster's kubeconfig"
            ) from exc
        return client.ApiClient(configuration=cfg)


class Kube:
    def __init__(self, api_client: client.ApiClient, field_manager: str = FIELD_MANAGER) -> None:
        self.api = api_client
        self.field_manager = field_manager

    @staticmethod
    def path(api_version: str, kind: str, namespace: str, name: str | None = None, sub: str = "") -> str:
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        out = f"{base}/namespaces/{namespace}/{PLURALS[kind]}"
        if name:
            out += f"/{name}"
        if sub:
            out += f"/{sub}"
        return out

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
        timeout: float = 30,
    ) -> Any:
        return self.api.call_api(
            path,
            method,
            query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            response_type="object",
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _request_timeout=timeout,
        )

    def version(self, timeout: float = 3.0) -> str:
        """The API server's version: a cheap call every authenticated client may make."""
        return str(self._call("GET", "/version", timeout=timeout).get("gitVersion", "?"))

    @staticmethod
    def _where(obj: dict[str, Any]) -> tuple[str, str, str, str]:
        meta = obj["metadata"]
        return obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"]

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._call("GET", self.path(api_version, kind, namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply (``force``: the operator owns what it renders)."""
        api_version, kind, namespace, name = self._where(obj)
        return self._call(
            "PATCH",
            self.path(api_version, kind, namespace, name),
            body=obj,
            query=[("fieldManager", self.field_manager), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        api_version, kind, namespace, _ = self._where(obj)
        return self._call(
            "POST",
            self.path(api_version, kind, namespace),
            body=obj,
            query=[("fieldManager", self.field_manager)],
        )

    def merge_patch(
        self, api_version: str, kind: str, namespace: str, name: str, body: Any, sub: str = ""
    ) -> dict[str, Any]:
        return self._call(
            "PATCH",
            self.path(api_version, kind, namespace, name, sub),
            body=body,
            query=[("fieldManager", self.field_manager)],
            content_type="application/merge-patch+json",
        )

    def delete(
        self, api_version: str, kind: str, namespace: str, name: str, propagation: str = "Background"
    ) -> bool:
        """Delete (``propagation``: Background, Foreground or Orphan); False if it did not exist."""
        try:
            self._call(
                "DELETE",
                self.path(api_version, kind, namespace, name),
                body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation},
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True
