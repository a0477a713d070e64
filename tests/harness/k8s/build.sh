#!/usr/bin/env bash
# Build a real Kubernetes control plane (etcd, kube-apiserver,
# kube-controller-manager, kubectl) plus helm from Go modules, into a cache
# directory outside the repository:
#
#   build.sh        ${STREAMPIPELINE_CACHE:-$HOME/.cache/streampipeline}/k8s-bin/<k8s>-etcd<etcd>-helm<helm>/
#   build.sh node   .../k8s-bin/node-<k8s>-coredns<coredns>/  (kube-scheduler, kubelet,
#                   kube-proxy, coredns: what the test node adds to the control plane)
#
# The node set has a directory of its own so that adding it neither rebuilds nor
# renames the control plane's cache.
#
# Idempotent: if every binary is already present it only prints the directory.
# The bin directory is always the LAST line of stdout; progress goes to stderr.
#
# Versions are taken from the wrapper modules' go.mod files (kube/, etcd/) and
# HELM_VERSION below. Each binary is built to a temporary name and renamed, so
# an interrupted build never leaves a half-written binary that looks complete.
# A lock file serialises concurrent invocations (e.g. parallel test workers).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HELM_VERSION="v4.3.1"

log() { printf '[k8s-build] %s\n' "$*" >&2; }

GO="$(command -v go || true)"
if [[ -z "${GO}" && -x /usr/local/go/bin/go ]]; then
  GO=/usr/local/go/bin/go
fi
if [[ -z "${GO}" ]]; then
  log "error: no 'go' toolchain found on PATH or at /usr/local/go/bin/go"
  exit 1
fi

# Version of a required module as pinned in a wrapper go.mod.
modver() { # <go.mod> <module path>
  awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$1"
}

TARGET="${1:-controlplane}"
case "${TARGET}" in
  controlplane | node) ;;
  *) log "usage: build.sh [node]"; exit 2 ;;
esac

K8S_VERSION="$(modver "${HERE}/kube/go.mod" k8s.io/kubernetes)"
ETCD_VERSION="$(modver "${HERE}/etcd/go.mod" go.etcd.io/etcd/server/v3)"
COREDNS_VERSION="$(modver "${HERE}/coredns/go.mod" github.com/coredns/coredns)"
if [[ -z "${K8S_VERSION}" || -z "${ETCD_VERSION}" || -z "${COREDNS_VERSION}" ]]; then
  log "error: cannot read pinned versions from ${HERE}/{kube,etcd,coredns}/go.mod"
  exit 1
fi

CACHE_ROOT="${STREAMPIPELINE_CACHE:-${HOME}/.cache/streampipeline}"
if [[ "${TARGET}" == node ]]; then
  BIN_DIR="${CACHE_ROOT}/k8s-bin/node-${K8S_VERSION#v}-coredns${COREDNS_VERSION#v}"
  BINARIES=(kube-scheduler kubelet kube-proxy coredns)
else
  BIN_DIR="${CACHE_ROOT}/k8s-bin/${K8S_VERSION#v}-etcd${ETCD_VERSION#v}-helm${HELM_VERSION#v}"
  BINARIES=(etcd kube-apiserver kube-controller-manager kubectl helm)
fi

all_present() {
  local b
  for b in "${BINARIES[@]}"; do
    [[ -x "${BIN_DIR}/${b}" ]] || return 1
  done
}

if all_present; then
  echo "${BIN_DIR}"
  exit 0
fi

mkdir -p "${BIN_DIR}"
exec 9>"${BIN_DIR}/.build.lock"
if command -v flock >/dev/null 2>&1; then
  log "waiting for build lock ${BIN_DIR}/.build.lock"
  flock 9
fi
if all_present; then # another process finished the build while we waited
  echo "${BIN_DIR}"
  exit 0
fi

export CGO_ENABLED=0
START=$(date +%s)

# k8s version stamping, as upstream hack/lib/version.sh does.
K8S_MINOR="$(echo "${K8S_VERSION}" | cut -d. -f2)"
K8S_LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  K8S_LDFLAGS+=" -X ${pkg}.gitVersion=${K8S_VERSION}"
  K8S_LDFLAGS+=" -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${K8S_MINOR}"
  K8S_LDFLAGS+=" -X ${pkg}.gitTreeState=clean"
done

build_in_module() { # <module dir> <package> <output name> <ldflags>
  local dir="$1" pkg="$2" out="$3" ldflags="$4"
  if [[ -x "${BIN_DIR}/${out}" ]]; then
    log "${out}: already built"
    return 0
  fi
  log "${out}: building ${pkg} in ${dir} (cold builds take several minutes)"
  local t0=$(date +%s)
  (
    cd "${dir}"
    if [[ ! -f go.sum ]]; then
      log "${out}: go.sum missing, running go mod tidy"
      GOFLAGS=-mod=mod "${GO}" mod tidy
    fi
    GOFLAGS="${GOFLAGS:-} -mod=mod" "${GO}" build -trimpath -ldflags="${ldflags}" \
      -o "${BIN_DIR}/.${out}.tmp" "${pkg}"
  )
  mv -f "${BIN_DIR}/.${out}.tmp" "${BIN_DIR}/${out}"
  log "${out}: done in $(( $(date +%s) - t0 ))s"
}

if [[ "${TARGET}" == node ]]; then
  build_in_module "${HERE}/kube" ./cmd/kube-scheduler kube-scheduler "${K8S_LDFLAGS}"
  build_in_module "${HERE}/kube" ./cmd/kubelet kubelet "${K8S_LDFLAGS}"
  build_in_module "${HERE}/kube" ./cmd/kube-proxy kube-proxy "${K8S_LDFLAGS}"
  build_in_module "${HERE}/coredns" . coredns "-s -w"
  all_present || { log "error: some binaries are missing in ${BIN_DIR}"; exit 1; }
  log "node binaries built in $(( $(date +%s) - START ))s"
  echo "${BIN_DIR}"
  exit 0
fi

build_in_module "${HERE}/etcd" . etcd "-s -w"
build_in_module "${HERE}/kube" ./cmd/kube-apiserver kube-apiserver "${K8S_LDFLAGS}"
build_in_module "${HERE}/kube" ./cmd/kube-controller-manager kube-controller-manager "${K8S_LDFLAGS}"
build_in_module "${HERE}/kube" ./cmd/kubectl kubectl "${K8S_LDFLAGS}"

if [[ ! -x "${BIN_DIR}/helm" ]]; then
  log "helm: go install helm.sh/helm/v4/cmd/helm@${HELM_VERSION}"
  t0=$(date +%s)
  tmp_gobin="$(mktemp -d "${BIN_DIR}/.helm.XXXXXX")"
  # `go install pkg@version` ignores any local go.mod; -mod must not be set.
  (
    cd "${tmp_gobin}"
    GOFLAGS="" GOBIN="${tmp_gobin}" "${GO}" install -trimpath \
      -ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v4/internal/version.metadata= -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
      "helm.sh/helm/v4/cmd/helm@${HELM_VERSION}"
  )
  mv -f "${tmp_gobin}/helm" "${BIN_DIR}/helm"
  rm -rf "${tmp_gobin}"
  log "helm: done in $(( $(date +%s) - t0 ))s"
fi

all_present || { log "error: some binaries are missing in ${BIN_DIR}"; exit 1; }
log "all binaries built in $(( $(date +%s) - START ))s"
echo "${BIN_DIR}"
