"""A real Kubernetes node for integration tests: the control plane plus a node that runs pods.

:class:`NodeCluster` is a :class:`~harness.controlplane.ControlPlane` that also runs
``kube-scheduler``, a ``containerd`` of its own (CRI on), a ``kubelet``, ``kube-proxy``
(iptables mode) and CoreDNS, all as local processes, so that Pods really run. Built from Go
modules by ``k8s/build.sh node``; images come from :mod:`harness.images` or from any
``docker save`` archive through :meth:`NodeCluster.import_image`.

Network rules (tests send traffic only to loopback and to what they create):

- Pods sit on a bridge of their own (``spnode0``, ``10.233.0.0/24``) with routes to the pod
  and Service ranges only: no default route, no masquerade, and a FORWARD rule drops
  anything from the bridge to another interface.
- CoreDNS answers ``cluster.local`` only (the binary has no forward plugin); other names
  get REFUSED.
- containerd runs with ``HTTPS_PROXY``/``HTTP_PROXY`` pointing at a closed loopback port,
  so an image missing from its store fails at once instead of reaching a registry.

Needs root, Linux, ``containerd``/``runc``/``ctr`` (Debian's ``containerd``), the
``containernetworking-plugins`` in ``/usr/lib/cni``, ``iptables`` and ``ip``. One node runs
per machine at a time (a lock file; the bridge, the iptables chains and the ``kubepods``
cgroups are machine-wide names). :meth:`NodeCluster.stop` removes every process, mount,
network namespace, iptables rule, cgroup and sysctl change it made, and
:attr:`NodeCluster.leftovers` lists anything it could not.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

import yaml

from .controlplane import BUILD_SCRIPT, SERVICE_CIDR, ControlPlane, ControlPlaneError, _free_port, _free_ports
from .images import PAUSE_IMAGE, pause_archive

__all__ = ["NODE_BINARIES", "NodeCluster", "ensure_node_binaries"]

NODE_BINARIES = ("kube-scheduler", "kubelet", "kube-proxy", "coredns")
ENV_NODE_BIN = "STREAMPIPELINE_K8S_NODE_BIN"

NODE_NAME = "streampipeline-node"
BRIDGE = "spnode0"
POD_CIDR = "10.233.0.0/24"
GATEWAY = "10.233.0.1"  # the bridge's address: API server, kubelet and CoreDNS bind to it
CLUSTER_DOMAIN = "cluster.local"
FORWARD_CHAIN = "SP-NODE-FORWARD"
CNI_BIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")
LOCK_PATH = Path("/run/lock/streampipeline-node.lock")
# The host's sysctls as they were before a node started; removed by a clean stop, so one
# left behind is a killed run's, and the next start restores it first.
SYSCTLS_SAVED = Path("/run/lock/streampipeline-node.sysctls.json")
HOSTPATH_PV_ROOT = Path("/tmp/hostpath_pv")  # where kube-controller-manager's provisioner writes
CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTAINER_LOG_LINKS = Path("/var/log/containers")  # kubelet's legacy symlinks (a fixed path)
DEVICE_PLUGINS = Path("/var/lib/kubelet/device-plugins")  # the device manager's fixed socket dir
# Host settings the kubelet (protectKernelDefaults: false), the CNI plugins or kube-proxy may
# change; recorded before start and written back on stop.
RESTORED_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
    "net/netfilter/nf_conntrack_max",
    "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
)


def ensure_node_binaries(*, quiet: bool = False) -> Path:
    """The directory with kube-scheduler, kubelet, kube-proxy and coredns (``build.sh node``)."""
    env_bin = os.environ.get(ENV_NODE_BIN)
    if env_bin:
        bin_dir = Path(env_bin).expanduser().resolve()
        missing = [b for b in NODE_BINARIES if not (bin_dir / b).is_file()]
        if missing:
            raise ControlPlaneError(f"{ENV_NODE_BIN}={bin_dir} lacks: {', '.join(missing)}")
        return bin_dir
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "node"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if quiet else None,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or "").splitlines()[-40:]) if quiet else "(see stderr above)"
        raise ControlPlaneError(f"{BUILD_SCRIPT} node failed with exit code {proc.returncode}: {tail}")
    return Path(proc.stdout.strip().splitlines()[-1])


def _sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise ControlPlaneError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def _read_sysctl(name: str) -> str | None:
    try:
        return (Path("/proc/sys") / name).read_text().strip()
    except OSError:
        return None


def _write_sysctl(name: str, value: str) -> None:
    with contextlib.suppress(OSError):
        (Path("/proc/sys") / name).write_text(value)


def _mounts_under(prefixes: Iterable[Path]) -> list[str]:
    """Mount points below any of ``prefixes``, deepest first."""
    roots = [str(p.resolve()) for p in prefixes]
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if any(point == r or point.startswith(r + "/") for r in roots):
                found.append(point)
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


def _iptables_lines(table: str) -> list[str]:
    proc = _sh("iptables-save", "-t", table, check=False)
    return proc.stdout.splitlines() if proc.returncode == 0 else []


class NodeCluster(ControlPlane):
    """The control plane plus one node (containerd + kubelet + kube-proxy + CoreDNS) that runs Pods.

    :param node_bin_dir: directory with the node binaries (:func:`ensure_node_binaries`).
    :param lock_timeout: seconds to wait for another node on this machine to stop.

    Differences from the API-only :class:`ControlPlane`: the API server binds to the pod
    bridge's address (pods reach it through the ``kubernetes`` Service), ServiceAccount
    admission is on (pods get tokens), authorization is ``Node,RBAC`` with
    NodeRestriction, the endpoint reconciler is on, and the controller manager runs the
    host-path provisioner behind the default StorageClass ``standard``.
    """

    def __init__(
        self,
        bin_dir: str | os.PathLike[str] | None = None,
        node_bin_dir: str | os.PathLike[str] | None = None,
        *,
        lock_timeout: float = 900.0,
        **kwargs,
    ) -> None:
        super().__init__(bin_dir, **kwargs)
        if self.external:
            raise ControlPlaneError("NodeCluster starts its own node; unset STREAMPIPELINE_TEST_KUBECONFIG")
        self._node_bin_dir = Path(node_bin_dir).resolve() if node_bin_dir is not None else None
        self.lock_timeout = lock_timeout
        self.bind_address = GATEWAY
        self.node_name = NODE_NAME
        self.cluster_dns = GATEWAY
        self.node_dir: Path | None = None
        self.containerd_socket: Path | None = None
        self.leftovers: list[str] = []
        self.node_ready_seconds: float | None = None
        self._lock_file = None
        self._sysctls: dict[str, str] = {}
        self._created_log_links_dir = False
        self._created_var_lib_kubelet = False
        self._created_pv_root = False
        self._pv_dirs: set[Path] = set()
        self._pv_stop = threading.Event()
        self._pv_thread: threading.Thread | None = None
        self._proxy_healthz_port = 0
        self._dns_ready_port = 0

    # ------------------------------------------------------------------ API
    @property
    def node_bin_dir(self) -> Path:
        if self._node_bin_dir is None:
            self._node_bin_dir = ensure_node_binaries()
        return self._node_bin_dir

    def start(self) -> NodeCluster:
        """Start the control plane and the node; return once the node is Ready and DNS answers."""
        if self._started:
            return self
        t0 = time.monotonic()
        for tool in ("containerd", "ctr", "runc", "iptables", "iptables-save", "ip"):
            if not shutil.which(tool):
                raise ControlPlaneError(
                    f"{tool} not found: apt-get install containerd containernetworking-plugins"
                    " iptables iproute2"
                )
        if not self._cni_bin_dir():
            raise ControlPlaneError("CNI plugins not found: apt-get install containernetworking-plugins")
        node_bin = self.node_bin_dir
        missing = [b for b in NODE_BINARIES if not (node_bin / b).is_file()]
        if missing:
            raise ControlPlaneError(f"{node_bin} lacks {', '.join(missing)}")
        pause = pause_archive()
        self._acquire_lock()
        try:
            self._clean_stale_run()  # what a killed earlier run left (we hold the lock)
            self._clean_host()
            self._restore_saved_sysctls()
            self._sysctls = {n: v for n in RESTORED_SYSCTLS if (v := _read_sysctl(n)) is not None}
            SYSCTLS_SAVED.write_text(json.dumps(self._sysctls))
            self._created_pv_root = not HOSTPATH_PV_ROOT.exists()
            self._create_bridge()
        except BaseException:
            self._release_lock()
            raise
        try:
            super().start()  # on failure it calls self.stop(), which undoes the above
            self.node_dir = self.workdir / "node"
            self.node_dir.mkdir()
            self._start_containerd()
            self.import_image(pause)
            self._start_scheduler()
            self._start_kubelet()
            self._start_kube_proxy()
            self._start_coredns()
            self._install_storage()
        except BaseException:
            self.stop()
            raise
        self.node_ready_seconds = time.monotonic() - t0
        return self

    def stop(self, grace: float = 10.0) -> None:
        """Delete every pod, stop the node and the control plane, undo every host change."""
        if self.node_dir is not None and self._started:
            with contextlib.suppress(Exception):
                self._drain()
        for name in ("coredns", "kube-proxy", "kubelet", "kube-scheduler", "kube-controller-manager"):
            self._stop_proc(name, grace)
        self._pv_stop.set()
        if self.containerd_socket is not None:
            self._stop_containers()
        self._stop_proc("containerd", grace)
        self._kill_shims()
        if self._lock_file is not None:
            self._clean_host()
            for name, value in self._sysctls.items():
                if _read_sysctl(name) != value:
                    _write_sysctl(name, value)
            SYSCTLS_SAVED.unlink(missing_ok=True)
        node_dir = self.node_dir
        super().stop(grace)  # API server, etcd, then the work dir
        if self._lock_file is not None:
            self.leftovers = self._find_leftovers(node_dir)
            self._release_lock()
        self.node_dir = None
        self.containerd_socket = None

    def import_image(self, archive: str | os.PathLike[str]) -> list[str]:
        """Import a docker-archive (``docker save``) or OCI tarball into the node's image store.

        This is the hook for images built elsewhere (e.g. by a Docker engine): pods then
        run them with ``imagePullPolicy: Never`` or ``IfNotPresent``. Returns the image
        names the archive carried, as containerd's CRI knows them.
        """
        archive = Path(archive)
        before = set(self.images())
        proc = self._ctr("images", "import", "--no-unpack=false", str(archive), check=False)
        if proc.returncode != 0:
            raise ControlPlaneError(f"ctr images import {archive} failed: {proc.stderr.strip()}")
        names = self._archive_names(archive)
        known = set(self.images())
        missing = [n for n in names if n not in known]
        if missing:
            raise ControlPlaneError(f"{archive} imported but {missing} not listed (new: {known - before})")
        return names

    def images(self) -> list[str]:
        """Image names in the node's store (CRI's ``k8s.io`` namespace)."""
        out = self._ctr("images", "list", "-q").stdout
        return [ln.strip() for ln in out.splitlines() if ln.strip() and not ln.startswith("sha256:")]

    def memory_mb(self) -> dict[str, float]:
        """Resident memory (MB) of each process of the stack, plus ``total``; pods excluded."""
        usage: dict[str, float] = {}
        for proc in self._procs:
            if proc.alive():
                usage[proc.name] = _rss_mb(proc.popen.pid)
        shims = [pid for pid in _pids() if self._is_our_shim(pid)]
        usage["containerd-shims"] = sum(_rss_mb(pid) for pid in shims)
        usage["total"] = sum(usage.values())
        return usage

    # ------------------------------------------------------ control plane
    def _gen_certs(self) -> None:
        super()._gen_certs()
        client = (
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=clientAuth\n"
        )
        self._leaf_cert("kubelet", f"/O=system:nodes/CN=system:node:{NODE_NAME}", client)
        self._leaf_cert("kube-scheduler", "/CN=system:kube-scheduler", client)
        self._leaf_cert("kube-proxy", "/CN=system:kube-proxy", client)
        self._leaf_cert("coredns", "/CN=streampipeline:coredns", client)
        self._leaf_cert(
            "kubelet-serving",
            f"/CN={NODE_NAME}",
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
            f"subjectAltName=IP:{GATEWAY},DNS:{NODE_NAME}\n",
        )

    def _apiserver_args(self, port: int) -> list[str]:
        pki = self.pki
        node_mode = {
            "--authorization-mode": "Node,RBAC",
            "--disable-admission-plugins": None,  # ServiceAccount admission on: pods get tokens
            "--enable-admission-plugins": "NodeRestriction",
            "--endpoint-reconciler-type": "lease",  # the kubernetes Service gets an endpoint
        }
        args = []
        for arg in super()._apiserver_args(port):
            key = arg.split("=", 1)[0]
            if key in node_mode:
                continue
            args.append(arg)
        args += [f"{k}={v}" for k, v in node_mode.items() if v is not None]
        args += [
            f"--kubelet-client-certificate={pki / 'admin.crt'}",
            f"--kubelet-client-key={pki / 'admin.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP",
        ]
        return args

    def _controller_manager_args(self) -> list[str]:
        return [*super()._controller_manager_args(), "--enable-hostpath-provisioner=true"]

    # ----------------------------------------------------------------- node
    def _cni_bin_dir(self) -> str | None:
        return next((d for d in CNI_BIN_DIRS if Path(d, "bridge").is_file()), None)

    def _acquire_lock(self) -> None:
        LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(LOCK_PATH, "w")  # noqa: SIM115 - closed in _release_lock
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self._lock_file.close()
                    self._lock_file = None
                    raise ControlPlaneError(
                        f"another test node holds {LOCK_PATH} after {self.lock_timeout:.0f}s"
                    ) from None
                time.sleep(1)

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def _create_bridge(self) -> None:
        routes = json.loads(_sh("ip", "-j", "route", "show").stdout or "[]")
        for r in routes:
            if r.get("dst", "").startswith("10.233.") or r.get("dst") == POD_CIDR:
                raise ControlPlaneError(f"{POD_CIDR} is already routed on this machine: {r}")
        _sh("ip", "link", "add", BRIDGE, "type", "bridge")
        _sh("ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
        _sh("ip", "link", "set", BRIDGE, "up")
        # Routed pod-to-Service traffic enters and leaves the bridge: forwarding on this
        # interface only (the machine-wide ip_forward is left alone).
        _write_sysctl(f"net/ipv4/conf/{BRIDGE}/forwarding", "1")
        _sh("iptables", "-w", "-N", FORWARD_CHAIN)
        _sh("iptables", "-w", "-A", FORWARD_CHAIN, "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT")
        _sh("iptables", "-w", "-A", FORWARD_CHAIN, "-i", BRIDGE, "-j", "DROP")  # pods: no way out
        _sh("iptables", "-w", "-A", FORWARD_CHAIN, "-o", BRIDGE, "-j", "DROP")  # nor way in
        _sh("iptables", "-w", "-I", "FORWARD", "1", "-j", FORWARD_CHAIN)
        # Pods reach the API server, the kubelet and CoreDNS on the bridge address.
        _sh("iptables", "-w", "-I", "INPUT", "1", "-i", BRIDGE, "-j", "ACCEPT")

    def _start_containerd(self) -> None:
        d = self.node_dir / "containerd"
        (d / "cni").mkdir(parents=True)
        self.containerd_socket = d / "containerd.sock"
        cni = {
            "cniVersion": "0.4.0",
            "name": "streampipeline",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    # The bridge already has the gateway address (made above); isGateway
                    # would also turn on the machine-wide ip_forward.
                    "isGateway": False,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_CIDR, "gateway": GATEWAY}]],
                        # Pod and Service ranges only: no default route off the machine.
                        "routes": [{"dst": SERVICE_CIDR, "gw": GATEWAY}],
                        "dataDir": str(d / "cni-ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }
        (d / "cni" / "10-streampipeline.conflist").write_text(json.dumps(cni, indent=2))
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        config = f"""\
version = 2
root = "{d / "root"}"
state = "{d / "state"}"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{self.containerd_socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d / "opt"}"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # This VM lacks CAP_SYS_RESOURCE: runc cannot set a negative oom_score_adj.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{d / "runc"}"

[{cri}.cni]
  bin_dir = "{self._cni_bin_dir()}"
  conf_dir = "{d / "cni"}"
  max_conf_num = 1

[{cri}.registry]
  config_path = "{d / "certs.d"}"
"""
        (d / "config.toml").write_text(config)
        closed = f"http://127.0.0.1:{_closed_port()}"
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            # Any pull goes to a closed loopback port and fails at once: nothing reaches a registry.
            "HTTPS_PROXY": closed,
            "HTTP_PROXY": closed,
            "https_proxy": closed,
            "http_proxy": closed,
            "NO_PROXY": "",
        }
        proc = self._spawn("containerd", ["containerd", "--config", str(d / "config.toml")], env)

        def ready() -> bool:
            return self.containerd_socket.exists() and self._ctr("version", check=False).returncode == 0

        self._wait(proc, f"{self.containerd_socket}", ready)

    def _start_scheduler(self) -> None:
        kubeconfig = self._client_kubeconfig("kube-scheduler")
        self._spawn(
            "kube-scheduler",
            [
                str(self.node_bin_dir / "kube-scheduler"),
                f"--kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--secure-port=0",
            ],
        )

    def _start_kubelet(self) -> None:
        d = self.node_dir / "kubelet"
        d.mkdir()
        pki = self.pki
        port, healthz = _free_ports(2)
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": GATEWAY,
            "port": port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": healthz,
            "tlsCertFile": str(pki / "kubelet-serving.crt"),
            "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(pki / "ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "cgroupDriver": "cgroupfs",
            "failCgroupV1": False,  # this VM is cgroup v1; the default flips to true in 1.35
            "failSwapOn": False,
            "clusterDNS": [self.cluster_dns],
            "clusterDomain": CLUSTER_DOMAIN,
            "resolvConf": "",  # nothing of the host's DNS reaches pods
            "podLogsDir": str(d / "pod-logs"),
            "volumePluginDir": str(d / "volume-plugins"),
            "imageGCHighThresholdPercent": 100,  # never delete the imported images
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "maxPods": 60,
            "serializeImagePulls": False,
            "registerNode": True,
            "rotateCertificates": False,
            "serverTLSBootstrap": False,
            "protectKernelDefaults": False,
            "shutdownGracePeriod": "0s",
        }
        (d / "config.yaml").write_text(yaml.safe_dump(config))
        kubeconfig = self._client_kubeconfig("kubelet")
        self._created_log_links_dir = not CONTAINER_LOG_LINKS.exists()
        self._created_var_lib_kubelet = not DEVICE_PLUGINS.parent.exists()
        proc = self._spawn(
            "kubelet",
            [
                str(self.node_bin_dir / "kubelet"),
                f"--config={d / 'config.yaml'}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={d / 'root'}",
                f"--cert-dir={d / 'pki'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={GATEWAY}",
            ],
        )
        self._wait(proc, f"node {NODE_NAME} Ready", self._node_ready)

    def _node_ready(self) -> bool:
        node = self._api_json(f"/api/v1/nodes/{NODE_NAME}")
        conds = (node or {}).get("status", {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

    def _start_kube_proxy(self) -> None:
        d = self.node_dir / "kube-proxy"
        d.mkdir()
        healthz, metrics = _free_ports(2)
        self._proxy_healthz_port = healthz
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(self._client_kubeconfig("kube-proxy"))},
            "mode": "iptables",
            "hostnameOverride": NODE_NAME,
            "clusterCIDR": POD_CIDR,
            "healthzBindAddress": f"127.0.0.1:{healthz}",
            "metricsBindAddress": f"127.0.0.1:{metrics}",
            "nodePortAddresses": [f"{GATEWAY}/32"],
            # Leave the machine's conntrack settings alone.
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
            "iptables": {"localhostNodePorts": False, "masqueradeAll": False, "minSyncPeriod": "1s"},
        }
        (d / "config.yaml").write_text(yaml.safe_dump(config))
        proc = self._spawn(
            "kube-proxy", [str(self.node_bin_dir / "kube-proxy"), f"--config={d / 'config.yaml'}"]
        )

        def healthy() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{healthz}/healthz", timeout=2) as r:
                return r.status == 200

        self._wait(proc, "/healthz", healthy)

    def _start_coredns(self) -> None:
        d = self.node_dir / "coredns"
        d.mkdir()
        rbac = [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "streampipeline:coredns"},
                "rules": [
                    {
                        "apiGroups": [""],
                        "resources": ["endpoints", "services", "pods", "namespaces"],
                        "verbs": ["list", "watch"],
                    },
                    {
                        "apiGroups": ["discovery.k8s.io"],
                        "resources": ["endpointslices"],
                        "verbs": ["list", "watch"],
                    },
                ],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "streampipeline:coredns"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "streampipeline:coredns",
                },
                "subjects": [
                    {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "User",
                        "name": "streampipeline:coredns",
                    }
                ],
            },
        ]
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(rbac))
        ready = _free_port()
        self._dns_ready_port = ready
        kubeconfig = self._client_kubeconfig("coredns")
        # One zone, no forward plugin (the binary has none either): any other name is REFUSED.
        corefile = f"""\
{CLUSTER_DOMAIN}:53 {{
    bind {GATEWAY}
    errors
    ready 127.0.0.1:{ready}
    kubernetes {CLUSTER_DOMAIN} {{
        kubeconfig {kubeconfig} streampipeline-test
        ttl 5
    }}
    cache 5
    loadbalance
}}
"""
        (d / "Corefile").write_text(corefile)
        proc = self._spawn("coredns", [str(self.node_bin_dir / "coredns"), "-conf", str(d / "Corefile")])

        def answering() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{ready}/ready", timeout=2) as r:
                return r.status == 200

        self._wait(proc, "/ready", answering)

    def _install_storage(self) -> None:
        sc = {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": "standard",
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": "kubernetes.io/host-path",
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        }
        self.kubectl("apply", "-f", "-", input=json.dumps(sc))
        self._pv_stop.clear()
        self._pv_thread = threading.Thread(target=self._open_pv_dirs, name="node-pv-dirs", daemon=True)
        self._pv_thread.start()

    def _open_pv_dirs(self) -> None:
        """Make host-path PV directories writable for non-root pods.

        The provisioner creates them root-owned 0750 and fsGroup does not apply to
        host paths, so a pod running as a non-root user could not write its own volume.
        """
        while not self._pv_stop.wait(0.5):
            with contextlib.suppress(Exception):
                pvs = self._api_json("/api/v1/persistentvolumes") or {}
                for pv in pvs.get("items", []):
                    path = Path(((pv.get("spec") or {}).get("hostPath") or {}).get("path") or "/")
                    if path.parent == HOSTPATH_PV_ROOT and path.is_dir():
                        self._pv_dirs.add(path)
                        if path.stat().st_mode & 0o777 != 0o777:
                            path.chmod(0o777)

    # ------------------------------------------------------------- teardown
    def _drain(self) -> None:
        """Stop what creates pods, delete every pod and wait for the kubelet to finish them."""
        for name in ("kube-controller-manager", "kube-scheduler"):
            self._stop_proc(name, 10.0)
        if self._proc("kubelet") is None:
            return
        self.kubectl(
            "delete", "pods", "--all", "--all-namespaces", "--grace-period=1", "--wait=false", check=False
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pods = self._api_json("/api/v1/pods") or {}
            if not pods.get("items"):
                return
            time.sleep(0.5)

    def _stop_containers(self) -> None:
        """Kill and delete whatever containers are left (a killed kubelet leaves them running)."""
        if self._proc("containerd") is None:
            return
        tasks = self._ctr("tasks", "list", "-q", check=False).stdout.split()
        for task in tasks:
            self._ctr("tasks", "kill", "-s", "SIGKILL", task, check=False)
        for task in tasks:
            for _ in range(50):
                if self._ctr("tasks", "delete", task, check=False).returncode == 0:
                    break
                time.sleep(0.1)
        for container in self._ctr("containers", "list", "-q", check=False).stdout.split():
            self._ctr("containers", "delete", container, check=False)

    def _is_our_shim(self, pid: int) -> bool:
        if self.containerd_socket is None:
            return False
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return (
            bool(argv)
            and argv[0].endswith(b"containerd-shim-runc-v2")
            and str(self.containerd_socket).encode() in argv
        )

    def _kill_shims(self) -> None:
        """Shims outlive containerd by design; ours (by their -address) go with it."""
        for pid in [p for p in _pids() if self._is_our_shim(p)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    @staticmethod
    def _restore_saved_sysctls() -> None:
        """Write back the sysctls a killed run recorded (its kubelet changed them)."""
        with contextlib.suppress(OSError, ValueError):
            for name, value in json.loads(SYSCTLS_SAVED.read_text()).items():
                if name in RESTORED_SYSCTLS and _read_sysctl(name) != value:
                    _write_sysctl(name, value)
        SYSCTLS_SAVED.unlink(missing_ok=True)

    def _clean_stale_run(self) -> None:
        """Stop what a killed earlier node left running: its pods' processes and its shims.

        A SIGKILLed test process takes containerd and the kubelet with it (PDEATHSIG), but
        containers and their shims are meant to outlive containerd. We hold the machine's
        node lock, so anything in the ``kubepods`` cgroups, and any shim serving a
        ``streampipeline-cp-*`` containerd whose socket is gone, belongs to a dead run.
        """
        stale_shims = []
        for pid in _pids():
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
            if not argv or not argv[0].endswith("containerd-shim-runc-v2") or "-address" not in argv:
                continue
            address = argv[argv.index("-address") + 1] if argv.index("-address") + 1 < len(argv) else ""
            ours = "/streampipeline-cp-" in address and address.endswith("/node/containerd/containerd.sock")
            if ours and not _socket_alive(address):
                stale_shims.append(pid)
        pod_pids = set()
        for procs in CGROUP_ROOT.glob("*/kubepods/**/cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pod_pids.update(int(x) for x in procs.read_text().split())
        for pid in [*stale_shims, *pod_pids]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        # Their mounts (rootfs overlays, netns, kubelet volumes) under a work dir that is gone
        # or whose containerd is: unmount them so the directories can be removed.
        tmp = Path(tempfile.gettempdir())
        stale_dirs = {
            Path(m.split("/node/", 1)[0])
            for m in _mounts_under([tmp])
            if "/streampipeline-cp-" in m and "/node/" in m
        } | {d.parent for d in tmp.glob("streampipeline-cp-*/node")}
        stale_dirs = {
            d for d in stale_dirs if not _socket_alive(str(d / "node" / "containerd" / "containerd.sock"))
        }
        # That run's own processes: an API server whose etcd died first waits in its graceful
        # shutdown (the lease reconciler) instead of exiting on PDEATHSIG's SIGTERM.
        for pid in _pids():
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                if any(f"{d}/" in cmdline for d in stale_dirs):
                    os.kill(pid, signal.SIGKILL)
        # The device manager's fixed socket dir, left by a kubelet that did not stop.
        sock = DEVICE_PLUGINS / "kubelet.sock"
        only_ours = DEVICE_PLUGINS.is_dir() and [p.name for p in DEVICE_PLUGINS.iterdir()] == [sock.name]
        if only_ours and not _socket_alive(str(sock)):
            with contextlib.suppress(OSError):
                sock.unlink()
                DEVICE_PLUGINS.rmdir()
                DEVICE_PLUGINS.parent.rmdir()  # only if empty: a real kubelet's stays
        for workdir in stale_dirs:
            for point in _mounts_under([workdir]):
                if _sh("umount", point, check=False).returncode != 0:
                    _sh("umount", "-l", point, check=False)

    def _clean_host(self) -> None:
        """Undo every machine-wide change a node makes (idempotent; runs under the lock)."""
        if (self.node_bin_dir / "kube-proxy").is_file():
            _sh(str(self.node_bin_dir / "kube-proxy"), "--cleanup", check=False)
        for table in ("filter", "nat", "mangle"):
            for chain in ("KUBE-KUBELET-CANARY", "KUBE-FIREWALL", "KUBE-IPTABLES-HINT"):
                if any(ln.startswith(f":{chain} ") for ln in _iptables_lines(table)):
                    for line in _iptables_lines(table):
                        if f"-j {chain}" in line and line.startswith("-A "):
                            _sh(
                                "iptables",
                                "-w",
                                "-t",
                                table,
                                *line.replace("-A ", "-D ", 1).split(),
                                check=False,
                            )
                    _sh("iptables", "-w", "-t", table, "-F", chain, check=False)
                    _sh("iptables", "-w", "-t", table, "-X", chain, check=False)
        while _sh("iptables", "-w", "-D", "FORWARD", "-j", FORWARD_CHAIN, check=False).returncode == 0:
            pass
        while _sh("iptables", "-w", "-D", "INPUT", "-i", BRIDGE, "-j", "ACCEPT", check=False).returncode == 0:
            pass
        _sh("iptables", "-w", "-F", FORWARD_CHAIN, check=False)
        _sh("iptables", "-w", "-X", FORWARD_CHAIN, check=False)
        if self.node_dir is not None:
            for point in _mounts_under([self.node_dir]):
                if _sh("umount", point, check=False).returncode != 0:
                    _sh("umount", "-l", point, check=False)
        _sh("ip", "link", "del", BRIDGE, check=False)
        for hierarchy in CGROUP_ROOT.glob("*/kubepods"):
            for sub in sorted(hierarchy.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                if sub.is_dir():
                    with contextlib.suppress(OSError):
                        sub.rmdir()
            with contextlib.suppress(OSError):
                hierarchy.rmdir()
        for path in self._pv_dirs:
            shutil.rmtree(path, ignore_errors=True)
        if self._created_pv_root:
            with contextlib.suppress(OSError):
                HOSTPATH_PV_ROOT.rmdir()  # only if empty
        if self.node_dir is not None and CONTAINER_LOG_LINKS.is_dir():
            for link in CONTAINER_LOG_LINKS.iterdir():
                with contextlib.suppress(OSError):
                    if link.is_symlink() and os.readlink(link).startswith(str(self.node_dir)):
                        link.unlink()
            if self._created_log_links_dir:
                with contextlib.suppress(OSError):
                    CONTAINER_LOG_LINKS.rmdir()
        if self._created_var_lib_kubelet:
            with contextlib.suppress(OSError):
                (DEVICE_PLUGINS / "kubelet.sock").unlink(missing_ok=True)
                DEVICE_PLUGINS.rmdir()
                DEVICE_PLUGINS.parent.rmdir()

    def _find_leftovers(self, node_dir: Path | None) -> list[str]:
        found = []
        if Path(f"/sys/class/net/{BRIDGE}").exists():
            found.append(f"network interface {BRIDGE}")
        for table in ("filter", "nat", "mangle"):
            found += [
                f"iptables -t {table} {ln}"
                for ln in _iptables_lines(table)
                if ("KUBE-" in ln or FORWARD_CHAIN in ln or BRIDGE in ln) and not ln.startswith("#")
            ]
        if node_dir is not None:
            found += [f"mount {m}" for m in _mounts_under([node_dir])]
            if node_dir.exists() and not self.keep_workdir:
                found.append(f"directory {node_dir}")
        if self._created_pv_root and HOSTPATH_PV_ROOT.exists():
            found.append(f"directory {HOSTPATH_PV_ROOT}")
        if self._created_var_lib_kubelet and DEVICE_PLUGINS.parent.exists():
            found.append(f"directory {DEVICE_PLUGINS.parent}")
        found += [f"cgroup {p}" for p in CGROUP_ROOT.glob("*/kubepods")]
        found += [f"process {pid} (shim)" for pid in _pids() if self._is_our_shim(pid)]
        found += [f"process {p.name}" for p in self._procs if p.alive()]
        for name, value in self._sysctls.items():
            now = _read_sysctl(name)
            if now is not None and now != value:
                found.append(f"sysctl {name} = {now} (was {value})")
        return found

    # -------------------------------------------------------------- helpers
    def _proc(self, name: str):
        return next((p for p in self._procs if p.name == name and p.alive()), None)

    def _stop_proc(self, name: str, grace: float) -> None:
        for proc in [p for p in self._procs if p.name == name]:
            with contextlib.suppress(Exception):
                proc.stop(grace)
            self._procs.remove(proc)

    def _ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = ["ctr", "--address", str(self.containerd_socket), "--namespace", "k8s.io", *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        if check and proc.returncode != 0:
            raise ControlPlaneError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    @staticmethod
    def _archive_names(archive: Path) -> list[str]:
        import tarfile

        with tarfile.open(archive) as tar:
            try:
                manifest = json.load(tar.extractfile("manifest.json"))
                tags = [t for entry in manifest for t in entry.get("RepoTags") or []]
            except KeyError:  # OCI layout: names in index.json annotations
                index = json.load(tar.extractfile("index.json"))
                tags = [
                    m.get("annotations", {}).get("io.containerd.image.name")
                    or m.get("annotations", {}).get("org.opencontainers.image.ref.name")
                    for m in index.get("manifests", [])
                ]
        return [_normalise(t) for t in tags if t]

    def _api_json(self, path: str) -> dict | None:
        import ssl

        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        try:
            with urllib.request.urlopen(f"{self.server}{path}", context=ctx, timeout=5) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise


def _normalise(ref: str) -> str:
    """A docker reference as containerd names it (``busybox`` -> ``docker.io/library/busybox:latest``)."""
    name, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif not ("." in first or ":" in first or first == "localhost"):
        name = f"docker.io/{name}"
    return f"{name}:{tag}"


def _closed_port() -> int:
    """A loopback port nobody listens on (bound and released: connections are refused)."""
    return _free_port()


def _socket_alive(path: str) -> bool:
    """Whether something accepts connections on the unix socket ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        try:
            s.connect(path)
        except OSError:
            return False
    return True


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
