#!/usr/bin/env bash
# Installs what `make images` needs beyond Go to build the images of Debian packages
# (internal/imagebuild): apt-get and dpkg-deb (any Debian host has them; apt's package
# lists are fetched once when there are none) and npm, for the Node example bot's lock
# file. Idempotent and quiet; apt needs root, and only runs when something is missing.
set -euo pipefail

for tool in apt-get dpkg-deb; do
	if ! command -v "$tool" >/dev/null; then
		# The Go images need neither; building the others will say what is missing.
		echo "install-image-deps: $tool not found: the Python and Node images are made of Debian packages and build on a Debian or Ubuntu host only (go run ./hack/images --only operator,bot,gateway-proxy builds the Go images anywhere)" >&2
		exit 0
	fi
done
need=()
command -v npm >/dev/null || need+=(nodejs npm)
lists_missing=false
compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null || lists_missing=true
if ((${#need[@]})) || $lists_missing; then
	if [ "$(id -u)" != 0 ]; then
		echo "install-image-deps: apt-get update${need[*]:+ and apt-get install ${need[*]}} need root" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	if ((${#need[@]})); then
		echo "install-image-deps: apt-get install ${need[*]}" >&2
		apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	fi
fi
