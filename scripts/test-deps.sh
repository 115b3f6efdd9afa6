#!/usr/bin/env bash
# Installs what the tests need on a Debian 12 machine, if it is missing:
# Chromium for the dashboard's browser tests. Idempotent and quiet when
# everything is there already.
set -euo pipefail

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "test-deps: need ${need[*]}; run as root or install them: apt-get install ${need[*]}" >&2
  exit 1
fi
echo "test-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
