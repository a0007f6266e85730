#!/usr/bin/env bash
# Builds the envtest control plane (kube-apiserver, etcd) from Go modules, because
# setup-envtest cannot download on our machines. Binaries are cached outside the clone
# so CI and later runs reuse them. Prints the asset directory on stdout.
#
# Usage: hack/envtest-assets.sh [extra kubernetes commands...]
#   e.g. hack/envtest-assets.sh kube-controller-manager kube-scheduler
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.37.2}"
STAGING_VERSION="v0.${K8S_VERSION#v1.}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
CACHE_ROOT="${SHARDKEEPER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shardkeeper}"
ASSETS="${CACHE_ROOT}/k8s-${K8S_VERSION}"
WORK="${CACHE_ROOT}/build"

log() { echo "envtest-assets: $*" >&2; }

mkdir -p "${ASSETS}" "${WORK}"

build_kubernetes() {
  local cmds=("$@") missing=()
  for c in "${cmds[@]}"; do [[ -x "${ASSETS}/${c}" ]] || missing+=("${c}"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0

  local mod="${WORK}/kubernetes-${K8S_VERSION}"
  mkdir -p "${mod}"
  if [[ ! -f "${mod}/go.sum" ]]; then
    log "resolving k8s.io/kubernetes ${K8S_VERSION} (staging modules -> ${STAGING_VERSION})"
    local gomod
    gomod="$(cd "${mod}" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
    {
      echo "module shardkeeper.dev/envtest-kubernetes"
      echo
      echo "go 1.26"
      echo
      echo "require k8s.io/kubernetes ${K8S_VERSION}"
      echo
      echo "replace ("
      sed -n 's#^[[:space:]]*\(k8s.io/[^[:space:]]*\) => ./staging/.*#\t\1 => \1 '"${STAGING_VERSION}"'#p' "${gomod}"
      echo ")"
    } > "${mod}/go.mod"
    printf 'package tools\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver/app"\n' > "${mod}/tools.go"
    (cd "${mod}" && go mod tidy >&2)
  fi

  local ldflags="-s -w"
  ldflags+=" -X k8s.io/component-base/version.gitVersion=${K8S_VERSION}"
  ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
  ldflags+=" -X k8s.io/component-base/version.gitMinor=$(echo "${K8S_VERSION}" | cut -d. -f2)"
  ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
  ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=${K8S_VERSION}"
  for c in "${missing[@]}"; do
    log "building ${c} ${K8S_VERSION} (several minutes cold on 2 cores)"
    (cd "${mod}" && CGO_ENABLED=0 go build -trimpath -ldflags "${ldflags}" \
        -o "${ASSETS}/${c}.tmp" "k8s.io/kubernetes/cmd/${c}")
    mv "${ASSETS}/${c}.tmp" "${ASSETS}/${c}"
  done
}

build_etcd() {
  [[ -x "${ASSETS}/etcd" ]] && return 0
  local mod="${WORK}/etcd-${ETCD_VERSION}"
  mkdir -p "${mod}"
  log "building etcd ${ETCD_VERSION}"
  cat > "${mod}/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  if [[ ! -f "${mod}/go.mod" ]]; then
    (cd "${mod}" && go mod init shardkeeper.dev/envtest-etcd >&2 && \
      go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" >&2 && go mod tidy >&2)
  fi
  (cd "${mod}" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${ASSETS}/etcd.tmp" .)
  mv "${ASSETS}/etcd.tmp" "${ASSETS}/etcd"
}

build_etcd
build_kubernetes kube-apiserver "$@"
log "assets ready in ${ASSETS}"
echo "${ASSETS}"
