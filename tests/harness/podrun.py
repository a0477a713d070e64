"""Run a rendered pod's container with ``docker run`` the way the kubelet would run it.

The flags come from the objects the operator renders (``render.py``), not from a copy of
them: the pod's and container's ``securityContext`` (user and group, ``fsGroup``,
read-only root filesystem, no privilege escalation, dropped capabilities), its command and
arguments, environment and volumes (``configMap`` as read-only files, ``emptyDir`` as a
tmpfs, a claim as a host directory). ``$(VAR)`` references in arguments are expanded
from the container's env as the kubelet expands them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["expand", "prepare_volume_dir", "security_flags"]


def security_flags(pod_sc: Mapping[str, Any], container_sc: Mapping[str, Any]) -> list[str]:
    """docker-run flags for a pod + container securityContext (the container's wins)."""
    sc = {**pod_sc, **container_sc}
    flags: list[str] = []
    user = sc.get("runAsUser")
    group = sc.get("runAsGroup")
    if sc.get("runAsNonRoot") and user in (None, 0):
        raise ValueError("runAsNonRoot without a non-zero runAsUser: the kubelet would refuse the pod")
    if user is not None:
        flags += ["--user", f"{user}:{group if group is not None else 0}"]
    if pod_sc.get("fsGroup") is not None:
        flags += ["--group-add", str(pod_sc["fsGroup"])]
    if sc.get("readOnlyRootFilesystem"):
        flags.append("--read-only")
    if sc.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    caps = sc.get("capabilities") or {}
    for cap in caps.get("drop") or []:
        flags += ["--cap-drop", cap]
    for cap in caps.get("add") or []:
        flags += ["--cap-add", cap]
    seccomp = (sc.get("seccompProfile") or {}).get("type")
    if seccomp not in (None, "RuntimeDefault"):  # Docker's default profile is the runtime default
        raise ValueError(f"seccomp profile {seccomp} is not emulated")
    return flags


def expand(arg: str, env: Mapping[str, str]) -> str:
    """The kubelet's ``$(VAR)`` expansion (``$$`` escapes; unknown names stay as written)."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        arg,
    )


def prepare_volume_dir(path: Path, fs_group: int | None) -> Path:
    """A claim's directory as a fresh volume with ``fsGroup`` applied (group-owned, setgid, g+rwx)."""
    path.mkdir(parents=True, exist_ok=True)
    if fs_group is not None:
        os.chown(path, 0, fs_group)
        path.chmod(0o2775)
    return path
