#!/usr/bin/env bash
# Copies the generated CRD and the RBAC roles into the helm chart, which reads them with
# .Files.Get (a chart cannot reach files outside its directory). `make manifests` runs it;
# hack/verify-generated.sh and charts/chart_test.go fail when the copies are stale.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CHART="${ROOT}/charts/shardkeeper"
mkdir -p "${CHART}/files/crds" "${CHART}/files/rbac"
rm -f "${CHART}"/files/crds/*.yaml
cp "${ROOT}"/config/crd/bases/*.yaml "${CHART}/files/crds/"
cp "${ROOT}/config/rbac/role.yaml" "${ROOT}/config/rbac/leader_election_role.yaml" "${CHART}/files/rbac/"
