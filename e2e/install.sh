#!/usr/bin/env bash
# install.sh installs what the e2e tests need: the npm packages pinned in
# package-lock.json (into e2e/node_modules) and Debian's Chromium, which
# playwright-core drives (it downloads no browser of its own).
#
# Usage: bash e2e/install.sh   (as root, or with Chromium already installed)
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	echo "install.sh: node and npm are required" >&2
	exit 1
fi

# npm ci is reproducible from the lock file; the cache makes reruns quick.
# PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD is belt and braces: playwright-core has
# no install script, but nothing here may fetch a browser build.
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --prefer-offline

chromium="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "install.sh: $chromium is missing; install Debian's chromium as root" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q chromium
fi
echo "install.sh: node $(node --version), $("$chromium" --version 2>/dev/null || echo chromium)"
