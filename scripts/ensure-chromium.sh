#!/usr/bin/env bash
# Makes sure Debian's chromium is installed at /usr/bin/chromium for the
# browser test: installs the package with apt-get when it is missing.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
	exit 0
fi

echo "/usr/bin/chromium is missing; installing Debian's chromium package" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

if [ ! -x /usr/bin/chromium ]; then
	echo "installing chromium did not provide /usr/bin/chromium" >&2
	exit 1
fi
