#!/usr/bin/env bash
# Installs the peers of the benchmarks on a Debian 12 machine, if they are
# missing. Idempotent and quiet when everything is there.
#
#   scripts/bench-deps.sh            # the transfer benchmark's (as before)
#   scripts/bench-deps.sh profile    # the profile benchmark's
#   scripts/bench-deps.sh train      # the training benchmark's
#   scripts/bench-deps.sh transfer profile
#
# transfer (bench/transfer): rclone (1.60) and awscli (Debian's, at
# /usr/bin/aws: an aws found elsewhere on PATH, say from pip, is not the peer
# docs/benchmarks.md names). versitygw, the S3 server both sides talk to,
# comes from scripts/test-deps.sh.
#
# profile (bench/profile): pandas 1.5 for Debian's own /usr/bin/python3
# (python3-pandas; a pyenv python3 earlier on PATH is not the one used), node,
# and DuckDB's Node client @duckdb/node-api (DUCKDB_NODE_VERSION) installed
# with npm into $HPCML_BENCH_NODE_DIR (default /var/cache/hpcml-bench), where
# bench/profile looks for it.
#
# train (bench/train): PyTorch 1.13 CPU for Debian's own /usr/bin/python3
# (python3-torch, with NumPy), and libopenblas-dev, which the OpenBLAS build
# of hpcml's NN engine (-tags openblas) links. Also the OpenMP build of
# OpenBLAS (libopenblas0-openmp), downloaded and unpacked, not installed, into
# $HPCML_BENCH_OPENBLAS_OMP (default /var/cache/hpcml-bench/openblas-openmp):
# bench/train runs one PyTorch configuration on it (LD_LIBRARY_PATH), as
# installing it would not change the system's libblas.so.3 (pthreads, higher
# priority). The MNIST files come from scripts/sample-data.sh.
set -euo pipefail

benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(transfer)

: "${HPCML_BENCH_NODE_DIR:=/var/cache/hpcml-bench}"
: "${DUCKDB_NODE_VERSION:=1.5.6-r.1}"
: "${HPCML_BENCH_OPENBLAS_OMP:=/var/cache/hpcml-bench/openblas-openmp}"

need=()
want_duckdb=false
want_omp=false
for b in "${benches[@]}"; do
  case "$b" in
  transfer)
    command -v rclone >/dev/null 2>&1 || need+=(rclone)
    [ -x /usr/bin/aws ] || need+=(awscli)
    ;;
  profile)
    /usr/bin/python3 -c 'import pandas' >/dev/null 2>&1 || need+=(python3-pandas)
    command -v node >/dev/null 2>&1 || need+=(nodejs)
    command -v npm >/dev/null 2>&1 || need+=(npm)
    [ -f "$HPCML_BENCH_NODE_DIR/node_modules/@duckdb/node-api/package.json" ] &&
      grep -q "\"version\": \"$DUCKDB_NODE_VERSION\"" "$HPCML_BENCH_NODE_DIR/node_modules/@duckdb/node-api/package.json" ||
      want_duckdb=true
    ;;
  train)
    /usr/bin/python3 -c 'import torch' >/dev/null 2>&1 || need+=(python3-torch)
    dpkg -s libopenblas-dev >/dev/null 2>&1 || need+=(libopenblas-dev)
    [ -f "$HPCML_BENCH_OPENBLAS_OMP/libblas.so.3" ] || want_omp=true
    ;;
  *)
    echo "bench-deps: unknown benchmark $b (transfer, profile, train)" >&2
    exit 2
    ;;
  esac
done

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bench-deps: need ${need[*]}; run as root or install them: apt-get install --no-install-recommends ${need[*]}" >&2
    exit 1
  fi
  echo "bench-deps: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if $want_duckdb; then
  echo "bench-deps: installing @duckdb/node-api@$DUCKDB_NODE_VERSION into $HPCML_BENCH_NODE_DIR" >&2
  mkdir -p "$HPCML_BENCH_NODE_DIR"
  [ -f "$HPCML_BENCH_NODE_DIR/package.json" ] || echo '{"name":"hpcml-bench-peers","private":true}' >"$HPCML_BENCH_NODE_DIR/package.json"
  npm install --prefix "$HPCML_BENCH_NODE_DIR" --no-audit --no-fund --loglevel=error \
    "@duckdb/node-api@$DUCKDB_NODE_VERSION" >/dev/null
fi

if $want_omp; then
  echo "bench-deps: unpacking libopenblas0-openmp into $HPCML_BENCH_OPENBLAS_OMP" >&2
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && apt-get download -qq libopenblas0-openmp 2>/dev/null) || {
    [ "$(id -u)" -eq 0 ] && apt-get update -qq && (cd "$work" && apt-get download -qq libopenblas0-openmp)
  }
  dpkg -x "$work"/libopenblas0-openmp_*.deb "$work/x"
  mkdir -p "$HPCML_BENCH_OPENBLAS_OMP"
  cp -a "$work"/x/usr/lib/x86_64-linux-gnu/openblas-openmp/. "$HPCML_BENCH_OPENBLAS_OMP/"
fi
