#!/usr/bin/env bash
# Builds the envtest control plane (kube-apiserver, etcd) from Go modules, because
# setup-envtest cannot download on our machines. Binaries are cached outside the clone
# so CI and later runs reuse them. Prints the asset directory on stdout.
#
# Usage: hack/envtest-assets.sh [extra components...]
#   e.g. hack/envtest-assets.sh kube-controller-manager kube-scheduler kubelet kube-proxy kubectl coredns
# (the local cluster, hack/cluster, asks for all of those).
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.37.2}"
STAGING_VERSION="v0.${K8S_VERSION#v1.}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.15.0}"
CACHE_ROOT="${SHARDKEEPER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shardkeeper}"
ASSETS="${CACHE_ROOT}/k8s-${K8S_VERSION}"
WORK="${CACHE_ROOT}/build"
# Every component the throwaway kubernetes module can build, whether asked for or not.
K8S_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

log() { echo "envtest-assets: $*" >&2; }

mkdir -p "${ASSETS}" "${WORK}"

build_kubernetes() {
  local cmds=("$@") missing=()
  for c in "${cmds[@]}"; do [[ -x "${ASSETS}/${c}" ]] || missing+=("${c}"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0

  local mod="${WORK}/kubernetes-${K8S_VERSION}"
  mkdir -p "${mod}"
  # One throwaway module for every component, so that they share one resolution and
  # one build cache; a module made before a component was added is tidied again.
  local tools
  tools="$(printf 'package tools\n\nimport (\n'
    for c in "${K8S_COMMANDS[@]}"; do
      # kubectl's main is a thin wrapper around its staging module's command.
      if [[ "${c}" == kubectl ]]; then printf '\t_ "k8s.io/kubectl/pkg/cmd"\n'; continue; fi
      printf '\t_ "k8s.io/kubernetes/cmd/%s/app"\n' "${c}"
    done
    printf ')\n')"
  if [[ -f "${mod}/go.sum" && "$(cat "${mod}/tools.go")" != "${tools}" ]]; then
    log "adding components to ${mod}"
    echo "${tools}" > "${mod}/tools.go"
    (cd "${mod}" && go mod tidy >&2)
  fi
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
    echo "${tools}" > "${mod}/tools.go"
    (cd "${mod}" && go mod tidy >&2)
  fi

  local ldflags="-s -w"
  ldflags+=" -X k8s.io/component-base/version.gitVersion=${K8S_VERSION}"
  ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
  ldflags+=" -X k8s.io/component-base/version.gitMinor=$(echo "${K8S_VERSION}" | cut -d. -f2)"
  ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
  ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=${K8S_VERSION}"
  local i=0 start
  for c in "${missing[@]}"; do
    i=$((i + 1)) start=${SECONDS}
    log "building ${c} ${K8S_VERSION} (${i}/${#missing[@]}; several minutes cold on 2 cores)"
    (cd "${mod}" && CGO_ENABLED=0 go build -trimpath -ldflags "${ldflags}" \
        -o "${ASSETS}/${c}.tmp" "k8s.io/kubernetes/cmd/${c}")
    mv "${ASSETS}/${c}.tmp" "${ASSETS}/${c}"
    log "built ${c} in $((SECONDS - start)) s"
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
  local start=${SECONDS}
  (cd "${mod}" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${ASSETS}/etcd.tmp" .)
  mv "${ASSETS}/etcd.tmp" "${ASSETS}/etcd"
  log "built etcd in $((SECONDS - start)) s"
}

build_coredns() {
  [[ -x "${ASSETS}/coredns" ]] && return 0
  local mod="${WORK}/coredns-${COREDNS_VERSION}"
  mkdir -p "${mod}"
  if [[ ! -f "${mod}/go.sum" ]]; then
    log "resolving CoreDNS ${COREDNS_VERSION}"
    # CoreDNS's main package with its committed default plugin list.
    printf 'package tools\n\nimport _ "github.com/coredns/coredns"\n' > "${mod}/tools.go"
    (cd "${mod}" && { [[ -f go.mod ]] || go mod init shardkeeper.dev/cluster-coredns >&2; } && \
      go get "github.com/coredns/coredns@${COREDNS_VERSION}" >&2 && go mod tidy >&2)
  fi
  local start=${SECONDS}
  log "building coredns ${COREDNS_VERSION}"
  (cd "${mod}" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${ASSETS}/coredns.tmp" github.com/coredns/coredns)
  mv "${ASSETS}/coredns.tmp" "${ASSETS}/coredns"
  log "built coredns in $((SECONDS - start)) s"
}

k8s=(kube-apiserver) coredns=false
for c in "$@"; do
  case "${c}" in
    coredns) coredns=true ;;
    *) if [[ " ${K8S_COMMANDS[*]} " == *" ${c} "* ]]; then k8s+=("${c}"); continue; fi
      log "unknown component ${c} (known: ${K8S_COMMANDS[*]} coredns)"; exit 2 ;;
  esac
done

build_etcd
build_kubernetes "${k8s[@]}"
if ${coredns}; then build_coredns; fi
log "assets ready in ${ASSETS}"
echo "${ASSETS}"
