#!/usr/bin/env bash
# Installs the real Discord client libraries `make test-clients` connects to the emulator
# (docs/clients.md), so that a new machine needs nothing installed by hand:
#   - discord.py 2.2.2 and zstandard from Debian (apt, root), for /usr/bin/python3;
#   - discord.js 14 from the npm registry, exactly as the committed lock files say (npm ci),
#     in three package directories: test/clients/node/plain (no zlib-sync: a plain JSON
#     gateway), test/clients/node/zlib-sync (zlib-sync, built by node-gyp: zlib-stream) and
#     examples/node-bot (the example bot, no native addons).
# Idempotent and quiet: a package already installed is not asked for again, and a package
# directory whose node_modules was installed from the same lock file, Node and npm is left
# as it is (npm ci always deletes node_modules and would rebuild zlib-sync every run).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: the Python clients, and what node-gyp needs to build zlib-sync.
debs=(python3-discord python3-aiohttp python3-zstandard python3 make g++)
command -v node >/dev/null && command -v npm >/dev/null || debs+=(nodejs npm)
missing=()
for p in "${debs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	if [ "$(id -u)" != 0 ]; then
		echo "install-client-deps: apt-get install ${missing[*]} needs root" >&2
		exit 1
	fi
	echo "install-client-deps: apt-get install ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages, from the lock files only. node-gyp builds zlib-sync against the running
# Node's own headers when it has them (Debian's and NodeSource's packages do), never
# downloading them: this machine reaches no Node download site.
node_prefix="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
if [ -f "$node_prefix/include/node/common.gypi" ]; then
	export npm_config_nodedir="$node_prefix"
fi
for dir in test/clients/node/plain test/clients/node/zlib-sync examples/node-bot; do
	stamp="$dir/node_modules/.installed-from"
	want="$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -d' ' -f1) node $(node --version) npm $(npm --version)"
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
		continue
	fi
	echo "install-client-deps: npm ci in $dir" >&2
	(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
	if [ -f "$dir/node_modules/zlib-sync/package.json" ] && ! (cd "$dir" && node -e "require('zlib-sync')"); then
		echo "install-client-deps: zlib-sync in $dir does not load: was its install script (node-gyp) run?" >&2
		exit 1
	fi
	echo "$want" >"$stamp"
done
