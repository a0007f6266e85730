#!/usr/bin/env bash
# Fails when a tracked file is over the size limit (1 MiB) and not listed in
# hack/large-files.allow: a committed build output (a 40 MB `cluster` binary once) stays in
# the history of every clone for good.
#
#   hack/check-large-files.sh            files in the index (what the next commit holds)
#   hack/check-large-files.sh main..HEAD also every file added by those commits, even ones a
#                                        later commit removed: run it before merging a branch
#
# Outside a git checkout (a source tarball, a copy without .git) there is nothing tracked to
# check and no way to tell sources from build outputs, so it says so and passes rather than
# making `make test` unusable there; CI runs on a clone, where the check always applies.
set -euo pipefail

LIMIT=$((1024 * 1024))

if ! root="$(git rev-parse --show-toplevel 2>/dev/null)"; then
  echo "check-large-files: not a git checkout; skipped (it checks tracked files only)" >&2
  exit 0
fi
cd "${root}"

# One path per line, relative to the repository root; blank lines and # comments ignored.
allowed=()
if [[ -f hack/large-files.allow ]]; then
  while IFS= read -r line; do
    line="${line%%#*}"
    line="${line%"${line##*[![:space:]]}"}"
    [[ -n "${line}" ]] && allowed+=("${line}")
  done <hack/large-files.allow
fi
is_allowed() {
  local path
  for path in "${allowed[@]+"${allowed[@]}"}"; do
    [[ "$1" == "${path}" ]] && return 0
  done
  return 1
}

# "<type> <size> <path>" for every blob to check; the size is the blob's (the content that is
# or will be committed), not the working tree file's.
blobs() {
  # Index entries: "<mode> <object> <stage>\t<path>"; gitlinks (submodules, 160000) are commits.
  git ls-files -s -z | tr '\0' '\n' | awk '$1 != "160000" { split($0, f, "\t"); print $2 " " f[2] }' |
    git cat-file --batch-check='%(objecttype) %(objectsize) %(rest)'
  if [[ $# -gt 0 ]]; then
    git rev-list --objects "$@" -- | git cat-file --batch-check='%(objecttype) %(objectsize) %(rest)'
  fi
}

list="$(blobs "$@")" # fails here (set -e, pipefail) on a bad revision range
status=0
declare -A reported=()
while read -r type size path; do
  [[ "${type}" == blob && -n "${path}" && "${size}" -gt "${LIMIT}" ]] || continue
  is_allowed "${path}" && continue
  [[ -z "${reported[${path}]+x}" ]] || continue
  reported["${path}"]=1
  mib="$(awk -v s="${size}" 'BEGIN { printf "%.1f", s / 1048576 }')"
  echo "check-large-files: ${path} is ${mib} MiB (${size} bytes), over the 1 MiB limit for tracked files;" \
    "remove it (git rm --cached, and .gitignore it if it is a build output) or add it to hack/large-files.allow" >&2
  status=1
done <<<"${list}"
if [[ ${status} -eq 0 ]]; then
  echo "check-large-files: no tracked file over 1 MiB outside hack/large-files.allow"
fi
exit ${status}
