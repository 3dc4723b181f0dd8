#!/usr/bin/env bash
# Installs the Debian packages the test suite needs (Mosquitto, PostgreSQL, Chromium for the end-to-end browser
# tests) when they are missing.
# As root it installs them; otherwise it prints one line naming the packages and fails.
set -euo pipefail
missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "plantguard tests need these Debian packages: ${missing[*]} -- install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the packaged services; the suite runs its own on free ports, so stop those.
(service mosquitto stop || true) >/dev/null 2>&1
(service postgresql stop || true) >/dev/null 2>&1
