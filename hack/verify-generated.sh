#!/usr/bin/env bash
# Fails when the committed generated files (CRDs, RBAC, deepcopy, and the helm chart's
# copies of the CRD and RBAC) differ from what controller-gen makes of the current markers. Works on an unmodified copy of the tree,
# so it never touches the developer's files.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CONTROLLER_GEN="${CONTROLLER_GEN:-${ROOT}/bin/controller-gen}"
TMP="$(mktemp -d)"
trap 'rm -rf "${TMP}"' EXIT

# Copy the sources (not bin/ or .git) and regenerate there.
tar -C "${ROOT}" --exclude=./bin --exclude=./.git -cf - . | tar -C "${TMP}" -xf -
(
  cd "${TMP}"
  "${CONTROLLER_GEN}" object:headerFile="hack/boilerplate.go.txt" paths="./..."
  "${CONTROLLER_GEN}" rbac:roleName=operator crd paths="./..." \
    output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
  hack/sync-chart.sh
)

status=0
for path in api/v1/zz_generated.deepcopy.go config/crd/bases config/rbac/role.yaml charts/shardkeeper/files; do
  if ! diff -ru "${ROOT}/${path}" "${TMP}/${path}" >"${TMP}/diff" 2>&1; then
    echo "verify-generated: ${path} is out of date; run 'make manifests generate' and commit the result:" >&2
    head -40 "${TMP}/diff" >&2
    status=1
  fi
done
[[ ${status} -eq 0 ]] && echo "verify-generated: generated files are up to date"
exit ${status}
