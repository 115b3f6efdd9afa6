#!/usr/bin/env bash
# Installs what the tests need on a Debian 12 machine, if it is missing:
# Chromium for the dashboard's browser tests, versitygw (an S3-compatible
# server, Apache-2.0) for the object-storage tests, and Open MPI (mpirun,
# and mpicc to build the MPI test program) for the MPI job tests, and
# Slurm with munge for the Slurm backend's tests (which start their own
# cluster with scripts/slurm-dev-cluster.sh), and real tables for the
# table readers' tests (scripts/sample-data.sh: CSVs from Debian's
# python3-sklearn into /var/cache/hpcml-samples), and the ONNX peers for
# internal/onnx's tests: Debian's python3-onnx (onnx.checker) and npm's
# onnxruntime-node (in /var/cache/hpcml-test-node, or $HPCML_TEST_NODE_DIR),
# and Debian's libopenblas-dev for the NN engine's OpenBLAS build.
# Idempotent and quiet when everything is there already.
set -euo pipefail

# versitygw is a Go program: built from the module proxy into GOPATH/bin,
# where the tests look for it (about 2 minutes the first time).
VERSITYGW_VERSION=v1.8.0
gobin="$(go env GOPATH)/bin"
if ! command -v versitygw >/dev/null 2>&1 && [ ! -x "$gobin/versitygw" ]; then
  echo "test-deps: installing versitygw $VERSITYGW_VERSION into $gobin" >&2
  GOBIN="$gobin" go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
fi

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v mpicc >/dev/null 2>&1 || need+=(openmpi-bin libopenmpi-dev)
/usr/bin/python3 -c 'import onnx' >/dev/null 2>&1 || need+=(python3-onnx)
command -v npm >/dev/null 2>&1 || need+=(npm)
# The NN engine's OpenBLAS build (make test-openblas, part of make test).
dpkg -s libopenblas-dev >/dev/null 2>&1 || need+=(libopenblas-dev)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test-deps: need ${need[*]}; run as root or install them: apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "test-deps: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# onnxruntime-node carries libonnxruntime.so for linux-x64 (Debian packages
# no onnxruntime). --ignore-scripts: its postinstall would fetch optional
# CUDA libraries from outside the npm registry; the CPU build is bundled.
ORT_NODE_VERSION=1.30.0
ort_dir="${HPCML_TEST_NODE_DIR:-/var/cache/hpcml-test-node}"
if ! grep -qs "\"version\": \"$ORT_NODE_VERSION\"" "$ort_dir/node_modules/onnxruntime-node/package.json"; then
  echo "test-deps: installing onnxruntime-node $ORT_NODE_VERSION into $ort_dir" >&2
  mkdir -p "$ort_dir"
  [ -f "$ort_dir/package.json" ] || echo '{"private": true}' >"$ort_dir/package.json"
  npm install --prefix "$ort_dir" --no-audit --no-fund --ignore-scripts --loglevel=error \
    "onnxruntime-node@$ORT_NODE_VERSION" >/dev/null
fi

# Sample tables from Debian's python3-sklearn (internal/table's tests).
"$(dirname "$0")/sample-data.sh"

# Slurm, munge and slurmrestd: the dev cluster script knows the packages.
"$(dirname "$0")/slurm-dev-cluster.sh" install
