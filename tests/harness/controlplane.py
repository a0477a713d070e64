"""A real, throwaway Kubernetes control plane for integration tests.

Runs ``etcd``, ``kube-apiserver`` and ``kube-controller-manager`` as local
processes on free loopback ports (no kubelet, no scheduler: Pods are created
but stay Pending). The binaries are built from Go modules by
``tests/harness/k8s/build.sh`` into a cache directory outside the repository.

Typical use::

    from tests.harness.controlplane import ControlPlane, ensure_binaries

    with ControlPlane(ensure_binaries()) as cp:
        cp.apply_crds(["/path/to/crd.yaml"])
        cp.kubectl("create", "namespace", "demo")
        print(cp.kubeconfig)  # admin kubeconfig (client-cert auth, system:masters)

Environment variables:

``STREAMPIPELINE_TEST_KUBECONFIG``
    Use an existing cluster instead of starting one (e.g. a kind cluster:
    ``kind get kubeconfig > /tmp/kind.kubeconfig``). ``start()``/``stop()``
    then start and stop nothing, ``kubeconfig`` is that path, and
    ``kubectl()``/``helm()`` run against it. Tests must clean up what they
    create themselves in that mode.
``STREAMPIPELINE_K8S_BIN``
    Directory holding prebuilt ``etcd``, ``kube-apiserver``,
    ``kube-controller-manager``, ``kubectl`` and ``helm``; skips build.sh.
``STREAMPIPELINE_CACHE``
    Cache root for build.sh (default ``~/.cache/streampipeline``).
``STREAMPIPELINE_KEEP_CP_DIR``
    If set to ``1``, keep the temp dir (certs, etcd data, process logs) on stop.

Only the standard library and PyYAML are used; certificates are made with the
``openssl`` command-line tool.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml

__all__ = [
    "BUILD_SCRIPT",
    "ControlPlane",
    "ControlPlaneError",
    "KubectlError",
    "ensure_binaries",
]

HARNESS_DIR = Path(__file__).resolve().parent
BUILD_SCRIPT = HARNESS_DIR / "k8s" / "build.sh"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl", "helm")

ENV_KUBECONFIG = "STREAMPIPELINE_TEST_KUBECONFIG"
ENV_BIN = "STREAMPIPELINE_K8S_BIN"
ENV_KEEP = "STREAMPIPELINE_KEEP_CP_DIR"

SERVICE_CIDR = "10.0.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc"


class ControlPlaneError(RuntimeError):
    """The control plane could not be built, started or used."""


class KubectlError(subprocess.CalledProcessError):
    """A kubectl/helm call exited non-zero; ``str()`` includes its stderr."""

    def __str__(self) -> str:
        cmd = " ".join(str(c) for c in self.cmd)
        return f"{cmd!r} exited {self.returncode}:\n{(self.stderr or '').strip()}"


def ensure_binaries(*, quiet: bool = False) -> Path:
    """Return the directory with the control-plane binaries, building if needed.

    Uses ``$STREAMPIPELINE_K8S_BIN`` if set, otherwise runs ``k8s/build.sh``
    (a no-op once the cache is populated; a cold build takes ~10-20 minutes).
    """
    env_bin = os.environ.get(ENV_BIN)
    if env_bin:
        bin_dir = Path(env_bin).expanduser().resolve()
        missing = [b for b in BINARIES if not (bin_dir / b).is_file()]
        if missing:
            raise ControlPlaneError(f"{ENV_BIN}={bin_dir} lacks: {', '.join(missing)}")
        return bin_dir
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if quiet else None,  # progress goes to our stderr
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        detail = _tail_text(proc.stderr or "") if quiet else "(see stderr above)"
        raise ControlPlaneError(f"{BUILD_SCRIPT} failed with exit code {proc.returncode}: {detail}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if not lines:
        raise ControlPlaneError(f"{BUILD_SCRIPT} printed no bin dir")
    return Path(lines[-1].strip())


def _tail_text(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _tail_file(path: Path, lines: int = 40) -> str:
    try:
        data = path.read_bytes()[-64_000:]
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return _tail_text(data.decode("utf-8", "replace"), lines)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free_ports(n: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(_free_port())
    return sorted(ports)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """preexec_fn: have Linux SIGTERM the child if the test process dies."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class _Process:
    def __init__(
        self,
        name: str,
        argv: list[str],
        log_path: Path,
        die_with_parent: bool,
        env: dict[str, str] | None = None,
    ):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            preexec_fn=_die_with_parent if die_with_parent and sys.platform == "linux" else None,
        )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.popen.terminate()
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.popen.kill()
                self.popen.wait(timeout=10)
        self._log.close()


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager on loopback.

    :param bin_dir: directory with the binaries (see :func:`ensure_binaries`).
        ``None`` means: call :func:`ensure_binaries` lazily (in external mode
        only ``kubectl``/``helm`` are looked up there or on ``PATH``).
    :param startup_timeout: seconds allowed for each component to get ready.
    :param extra_apiserver_args / extra_controller_manager_args: appended flags.
    :param die_with_parent: children get SIGTERM if the Python process dies
        (Linux ``PR_SET_PDEATHSIG``; tied to the thread that calls ``start()``).

    If ``$STREAMPIPELINE_TEST_KUBECONFIG`` is set, nothing is started and that
    kubeconfig (e.g. a kind cluster's) is used instead; see the module docstring.
    """

    def __init__(
        self,
        bin_dir: str | os.PathLike[str] | None = None,
        *,
        startup_timeout: float = 120.0,
        extra_apiserver_args: Sequence[str] = (),
        extra_controller_manager_args: Sequence[str] = (),
        die_with_parent: bool = True,
        keep_workdir: bool | None = None,
    ) -> None:
        self._bin_dir = Path(bin_dir).resolve() if bin_dir is not None else None
        self.startup_timeout = startup_timeout
        self.extra_apiserver_args = list(extra_apiserver_args)
        self.extra_controller_manager_args = list(extra_controller_manager_args)
        self.die_with_parent = die_with_parent
        self.keep_workdir = os.environ.get(ENV_KEEP) == "1" if keep_workdir is None else keep_workdir
        external = os.environ.get(ENV_KUBECONFIG)
        self.external_kubeconfig: Path | None = Path(external).expanduser() if external else None
        self.workdir: Path | None = None
        self.server: str | None = None  # https://127.0.0.1:PORT once started
        self.etcd_url: str | None = None
        self._kubeconfig: Path | None = None
        self._procs: list[_Process] = []
        self._started = False
        self._atexit_registered = False
        self.startup_seconds: float | None = None
        # The address the API server binds and advertises (a subclass with a node binds it
        # to the pod bridge, which pods can reach and loopback is not).
        self.bind_address = "127.0.0.1"

    # ------------------------------------------------------------------ API
    @property
    def external(self) -> bool:
        """True when using ``$STREAMPIPELINE_TEST_KUBECONFIG`` (nothing is started)."""
        return self.external_kubeconfig is not None

    @property
    def kubeconfig(self) -> Path:
        """Path of the admin kubeconfig (or the external one)."""
        if self.external_kubeconfig is not None:
            return self.external_kubeconfig
        if self._kubeconfig is None:
            raise ControlPlaneError("control plane not started")
        return self._kubeconfig

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = ensure_binaries()
        return self._bin_dir

    @property
    def logs(self) -> dict[str, Path]:
        """Log file of each started process, by name."""
        return {p.name: p.log_path for p in self._procs}

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> ControlPlane:
        """Start etcd, kube-apiserver and kube-controller-manager; return self.

        Blocks until the apiserver's ``/readyz`` is OK and the controller
        manager has created the ``default`` ServiceAccount. On failure all
        processes are stopped and :class:`ControlPlaneError` carries the tail
        of the failing component's log.
        """
        if self._started:
            return self
        if self.external:
            if not self.kubeconfig.is_file():
                raise ControlPlaneError(f"{ENV_KUBECONFIG}={self.kubeconfig} does not exist")
            self._started = True
            return self
        t0 = time.monotonic()
        bin_dir = self.bin_dir
        for b in ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl"):
            if not (bin_dir / b).is_file():
                raise ControlPlaneError(f"missing binary {bin_dir / b}")
        self.workdir = Path(tempfile.mkdtemp(prefix="streampipeline-cp-"))
        self._started = True
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        try:
            self._gen_certs()
            self._start_etcd()
            self._start_apiserver()
            self._write_kubeconfig()
            self._start_controller_manager()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def stop(self, grace: float = 10.0) -> None:
        """Terminate (then kill) all processes and remove the temp dir. Idempotent."""
        procs, self._procs = self._procs, []
        for p in reversed(procs):  # controller-manager, apiserver, etcd
            with contextlib.suppress(Exception):
                p.stop(grace)
        if self.workdir is not None and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        elif self.workdir is not None:
            print(f"[controlplane] kept {self.workdir}", file=sys.stderr)
        self.workdir = None
        self._kubeconfig = None
        self.server = None
        self._started = False

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float | None = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this cluster; text stdout/stderr captured.

        With ``check=True`` a non-zero exit raises :class:`KubectlError`
        (a ``CalledProcessError`` whose ``str()`` shows stderr).
        """
        argv = [str(self._tool("kubectl")), "--kubeconfig", str(self.kubeconfig), *map(str, args)]
        return self._run(argv, input=input, check=check, timeout=timeout)

    def helm(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float | None = 300.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the built helm against this cluster (cache/config kept in the temp dir)."""
        argv = [str(self._tool("helm")), "--kubeconfig", str(self.kubeconfig), *map(str, args)]
        return self._run(argv, input=input, check=check, timeout=timeout)

    def apply_crds(
        self, paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], timeout: float = 60.0
    ) -> list[str]:
        """Server-side apply CRD files (or directories) and wait until Established.

        Server-side apply is used because large CRDs (e.g. Strimzi's) exceed
        the 256 KiB last-applied-configuration annotation of client-side apply.
        Returns the applied object names (``customresourcedefinition.../NAME``).
        """
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        names: list[str] = []
        for path in paths:
            out = self.kubectl(
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=streampipeline-tests",
                "-o",
                "name",
                "-f",
                str(path),
            ).stdout
            names.extend(ln.strip() for ln in out.splitlines() if ln.strip())
        crds = [n for n in names if n.startswith("customresourcedefinition")]
        if crds:
            self.wait_crds_established(crds, timeout=timeout)
        return names

    def wait_crds_established(self, crds: Sequence[str], timeout: float = 60.0) -> None:
        """Poll until every named CRD has condition Established=True.

        (``kubectl wait`` fails outright if ``.status.conditions`` is not set
        yet, which is common right after creation; hence polling.)
        """
        deadline = time.monotonic() + timeout
        pending = list(crds)
        while True:
            out = self.kubectl("get", *pending, "-o", "json").stdout
            doc = json.loads(out)
            items = doc.get("items", [doc]) if doc.get("kind", "").endswith("List") else [doc]
            pending = [
                f"customresourcedefinition.apiextensions.k8s.io/{item['metadata']['name']}"
                for item in items
                if not any(
                    c.get("type") == "Established" and c.get("status") == "True"
                    for c in (item.get("status") or {}).get("conditions") or []
                )
            ]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"CRDs not Established after {timeout:.0f}s: {pending}")
            time.sleep(0.2)

    # ------------------------------------------------------------ internals
    def _tool(self, name: str) -> Path:
        if self._bin_dir is not None and (self._bin_dir / name).is_file():
            return self._bin_dir / name
        if self.external:
            env_bin = os.environ.get(ENV_BIN)
            if env_bin and (Path(env_bin) / name).is_file():
                return Path(env_bin) / name
            found = shutil.which(name)
            if found:
                return Path(found)
        return self.bin_dir / name

    def _tool_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env.setdefault("KUBERC", "off")  # ignore the user's ~/.kube/kuberc preferences
        if self.workdir is not None:
            # Keep kubectl discovery cache and helm state out of $HOME.
            env["KUBECACHEDIR"] = str(self.workdir / "kube-cache")
            for var, sub in (
                ("HELM_CACHE_HOME", "helm/cache"),
                ("HELM_CONFIG_HOME", "helm/config"),
                ("HELM_DATA_HOME", "helm/data"),
            ):
                env[var] = str(self.workdir / sub)
        return env

    def _run(
        self, argv: list[str], *, input: str | None, check: bool, timeout: float | None
    ) -> subprocess.CompletedProcess[str]:
        if not self._started:
            raise ControlPlaneError("control plane not started")
        proc = subprocess.run(
            argv,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self._tool_env(),
            check=False,
        )
        if check and proc.returncode != 0:
            raise KubectlError(proc.returncode, argv, proc.stdout, proc.stderr)
        return proc

    def _openssl(self, *args: str) -> None:
        proc = subprocess.run(
            ["openssl", *args], cwd=self.workdir, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise ControlPlaneError(f"openssl {' '.join(args)} failed:\n{proc.stderr}")

    def _gen_certs(self) -> None:
        d = self.pki = self.workdir / "pki"
        d.mkdir()
        ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
        self._openssl(
            "req", "-x509", *ec, "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"),
            "-days", "3650", "-subj", "/CN=streampipeline-test-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        )  # fmt: skip

        sans = ",".join(f"IP:{ip}" for ip in dict.fromkeys(("127.0.0.1", self.bind_address, "10.0.0.1")))
        self._leaf_cert(
            "apiserver",
            "/CN=kube-apiserver",
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
            f"subjectAltName={sans},DNS:localhost,DNS:kubernetes,"
            "DNS:kubernetes.default,DNS:kubernetes.default.svc,"
            "DNS:kubernetes.default.svc.cluster.local\n",
        )
        self._leaf_cert(
            "admin",
            "/O=system:masters/CN=admin",
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=clientAuth\n",
        )
        # Service-account token signing keypair (RSA: RS256 is what every client expects).
        self._openssl("genrsa", "-out", str(d / "sa.key"), "2048")
        self._openssl("rsa", "-in", str(d / "sa.key"), "-pubout", "-out", str(d / "sa.pub"))

    def _leaf_cert(self, name: str, subj: str, exts: str) -> None:
        """``pki/NAME.{key,crt}``: an EC key and a certificate signed by the test CA."""
        d = self.pki
        (d / f"{name}.ext").write_text(exts)
        self._openssl(
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"), "-subj", subj,
        )  # fmt: skip
        self._openssl(
            "x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.crt"),
            "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "3650", "-sha256",
            "-extfile", str(d / f"{name}.ext"), "-out", str(d / f"{name}.crt"),
        )  # fmt: skip

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> _Process:
        proc = _Process(name, argv, self.workdir / f"{name}.log", self.die_with_parent, env)
        self._procs.append(proc)
        return proc

    def _fail(self, proc: _Process, why: str) -> ControlPlaneError:
        state = "running" if proc.alive() else f"exited with code {proc.popen.returncode}"
        return ControlPlaneError(
            f"{proc.name} {why} ({state}); last lines of {proc.log_path}:\n{_tail_file(proc.log_path)}"
        )

    def _wait(self, proc: _Process, what: str, probe) -> None:
        deadline = time.monotonic() + self.startup_timeout
        delay = 0.05
        while True:
            if not proc.alive():
                raise self._fail(proc, f"died while waiting for {what}")
            with contextlib.suppress(Exception):
                if probe():
                    return
            if time.monotonic() > deadline:
                raise self._fail(proc, f"not ready after {self.startup_timeout:.0f}s waiting for {what}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def _start_etcd(self) -> None:
        client_port, peer_port = _free_ports(2)
        self.etcd_url = f"http://127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        etcd = self._spawn(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                "--name=default",
                f"--data-dir={self.workdir / 'etcd-data'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--initial-cluster-state=new",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )

        def healthy() -> bool:
            with urllib.request.urlopen(f"{self.etcd_url}/health", timeout=2) as r:
                return json.load(r).get("health") == "true"

        self._wait(etcd, "/health", healthy)

    def _https_get(self, path: str) -> int:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        try:
            with urllib.request.urlopen(f"{self.server}{path}", context=ctx, timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def _start_apiserver(self) -> None:
        port = _free_port()
        self.server = f"https://{self.bind_address}:{port}"
        apiserver = self._spawn(
            "kube-apiserver", [str(self.bin_dir / "kube-apiserver"), *self._apiserver_args(port)]
        )
        self._wait(apiserver, "/readyz", lambda: self._https_get("/readyz") == 200)

    def _apiserver_args(self, port: int) -> list[str]:
        """kube-apiserver's flags (a subclass may change them; the extra ones come last)."""
        pki = self.pki
        cert_dir = self.workdir / "apiserver-certs"
        cert_dir.mkdir(exist_ok=True)
        return [
            f"--etcd-servers={self.etcd_url}",
            f"--bind-address={self.bind_address}",
            f"--advertise-address={self.bind_address}",
            f"--secure-port={port}",
            f"--cert-dir={cert_dir}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=RBAC",
            "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true",
            "--endpoint-reconciler-type=none",
            "--enable-priority-and-fairness=false",
            *self.extra_apiserver_args,
        ]

    def _write_kubeconfig(self) -> None:
        self._kubeconfig = self._client_kubeconfig("admin")

    def _client_kubeconfig(self, user: str) -> Path:
        """``WORKDIR/USER.kubeconfig``: client-certificate auth with ``pki/USER.{crt,key}``."""

        # Files by path, not inline "-data": the Python kubernetes client copies inline
        # certificates and keys to temporary files that outlive a killed process.
        def path(name: str) -> str:
            return str((self.pki / name).resolve())

        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "streampipeline-test",
                    "cluster": {"server": self.server, "certificate-authority": path("ca.crt")},
                }
            ],
            "users": [
                {
                    "name": user,
                    "user": {
                        "client-certificate": path(f"{user}.crt"),
                        "client-key": path(f"{user}.key"),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "streampipeline-test",
                    "context": {"cluster": "streampipeline-test", "user": user, "namespace": "default"},
                }
            ],
            "current-context": "streampipeline-test",
            "preferences": {},
        }
        path = self.workdir / f"{user}.kubeconfig"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        path.chmod(0o600)
        return path

    def _start_controller_manager(self) -> None:
        kcm = self._spawn(
            "kube-controller-manager",
            [str(self.bin_dir / "kube-controller-manager"), *self._controller_manager_args()],
        )
        # The serviceaccount controller creating default/default proves the
        # controllers are running and connected.
        self._wait(
            kcm,
            "the default ServiceAccount",
            lambda: self._https_get("/api/v1/namespaces/default/serviceaccounts/default") == 200,
        )

    def _controller_manager_args(self) -> list[str]:
        """kube-controller-manager's flags (a subclass may change them; the extra ones come last)."""
        pki = self.pki
        return [
            f"--kubeconfig={self.kubeconfig}",
            # No HTTPS endpoint (healthz/metrics): nothing needs it, and it
            # would need delegated authn/authz wiring.
            "--secure-port=0",
            "--leader-elect=false",
            "--use-service-account-credentials=false",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # All default controllers (garbage collector, namespace, deployment,
            # replicaset, serviceaccount, job, ...) minus node IPAM (no nodes/CIDRs).
            "--controllers=*,-nodeipam",
            *self.extra_controller_manager_args,
        ]
