#!/usr/bin/env bash
# Generates the Prometheus Operator's CRDs (ServiceMonitor, PodMonitor, PrometheusRule, ...)
# from the Go types of its API module, at a pinned version, with our pinned controller-gen:
# the module proxy serves that module but not the repository whose example/ holds the
# published YAML, and the upstream YAML is generated from the same types by controller-gen.
# The chart tests install them on envtest. Cached outside the clone; prints the directory.
#
# Usage: hack/monitoring-crds.sh   (CONTROLLER_GEN defaults to bin/controller-gen)
set -euo pipefail

VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.95.2}"
MODULE="github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring"
CACHE_ROOT="${SHARDKEEPER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shardkeeper}"
OUT="${CACHE_ROOT}/monitoring-crds-${VERSION}"
CONTROLLER_GEN="${CONTROLLER_GEN:-$(cd "$(dirname "$0")/.." && pwd)/bin/controller-gen}"

if [[ -f "${OUT}/monitoring.coreos.com_prometheusrules.yaml" ]]; then
  echo "${OUT}"
  exit 0
fi
if [[ ! -x "${CONTROLLER_GEN}" ]]; then
  echo "monitoring-crds: no controller-gen at ${CONTROLLER_GEN} (make controller-gen installs it)" >&2
  exit 1
fi

mod="${CACHE_ROOT}/build/monitoring-${VERSION}"
mkdir -p "${mod}"
printf 'module shardkeeper.dev/monitoring-crds\n\ngo 1.26\n\nrequire %s %s\n' "${MODULE}" "${VERSION}" > "${mod}/go.mod"
printf 'package tools\n\nimport _ "%s/v1"\n' "${MODULE}" > "${mod}/tools.go"
echo "monitoring-crds: generating the CRDs of ${MODULE} ${VERSION}" >&2
(cd "${mod}" && GOFLAGS=-mod=mod go mod tidy >&2)
rm -rf "${OUT}.tmp.$$"
(cd "${mod}" && GOFLAGS=-mod=mod "${CONTROLLER_GEN}" crd paths="${MODULE}/v1" output:crd:dir="${OUT}.tmp.$$")
mv -T "${OUT}.tmp.$$" "${OUT}" 2>/dev/null || rm -rf "${OUT}.tmp.$$" # another run got there first
echo "${OUT}"
