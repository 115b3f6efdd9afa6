#!/usr/bin/env bash
# Installs the peers of the transfer benchmark (bench/transfer) on a Debian 12
# machine, if they are missing: rclone (1.60) and awscli (Debian's, at
# /usr/bin/aws: an aws found elsewhere on PATH, say from pip, is not the peer
# docs/benchmarks.md names). versitygw, the S3 server both sides talk to,
# comes from scripts/test-deps.sh. Idempotent and quiet when both are there.
set -euo pipefail

need=()
command -v rclone >/dev/null 2>&1 || need+=(rclone)
[ -x /usr/bin/aws ] || need+=(awscli)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "bench-deps: need ${need[*]}; run as root or install them: apt-get install --no-install-recommends ${need[*]}" >&2
  exit 1
fi
echo "bench-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
