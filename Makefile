# hpcml — see README.md. `make run` starts the platform, `make test` tests it.
GO       ?= go
BIN      := bin/hpcml
DATA_DIR ?= .hpcml
LISTEN   ?= 127.0.0.1:8080

.PHONY: all build run test test-deps vet fmt bench bench-slurm bench-slurm-backend bench-deps bench-transfer bench-profile bench-train bench-allreduce bench-dataparallel bench-serve bench-gateway bench-transform bench-async bench-multimodel test-openblas clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/hpcml

# Starts the control plane on embedded defaults (SQLite, file:// storage,
# local executor) and prints the dashboard URL.
run: build
	$(BIN) server --data-dir $(DATA_DIR) --listen $(LISTEN)

test-deps:
	./scripts/test-deps.sh

vet:
	@test -z "$$(gofmt -l cmd internal web bench)" || { echo "gofmt needed:"; gofmt -l cmd internal web bench; exit 1; }
	$(GO) vet ./...

# Installs what the tests need (Chromium, versitygw, Slurm, the ONNX peers,
# sample data, OpenBLAS), then vets and runs every test, and the NN engine's
# tests again on the OpenBLAS build.
test: test-deps vet
	$(GO) test -count=1 -timeout 20m ./...
	$(GO) test -count=1 -tags openblas ./internal/nn/... ./internal/onnx/

# The NN engine's tests on OpenBLAS (cgo, Debian's libopenblas-dev) instead
# of its pure-Go GEMM; blas_openblas.go links -lopenblas itself, so no
# CGO_LDFLAGS are needed.
test-openblas:
	$(GO) test -count=1 -tags openblas ./internal/nn/...

# Job throughput and submit-to-start latency; see docs/benchmarks.md.
bench: build
	$(GO) run ./bench/jobs -hpcml $(BIN) -runs 3 -array 2000

# The same, with plain sbatch on a one-node local Slurm as the peer.
bench-slurm: build
	./scripts/slurm-dev-cluster.sh up 1
	SLURM_CONF=$${HPCML_SLURM_DIR:-/tmp/hpcml-slurm}/slurm.conf $(GO) run ./bench/jobs -hpcml $(BIN) -slurm -n 300 -idle 20 -array 300; \
	  rc=$$?; ./scripts/slurm-dev-cluster.sh down; exit $$rc

# hpcml's Slurm backend against plain sbatch on a two-node local Slurm.
bench-slurm-backend: build
	./scripts/slurm-dev-cluster.sh up 2
	SLURM_CONF=$${HPCML_SLURM_DIR:-/tmp/hpcml-slurm}/slurm.conf $(GO) run ./bench/slurm -hpcml $(BIN) -n 100 -runs 3; \
	  rc=$$?; ./scripts/slurm-dev-cluster.sh down; exit $$rc

# Installs the transfer benchmark's peers (rclone, awscli) with apt, if missing.
bench-deps:
	./scripts/bench-deps.sh

# hpcml data sync against rclone and aws s3 sync on a local versitygw
# (from test-deps); see docs/benchmarks.md. Takes several minutes.
bench-transfer: build bench-deps
	$(GO) run ./bench/transfer -hpcml $(BIN)

# hpcml data profile against pandas 1.5 (describe + corr) and DuckDB (SUMMARIZE)
# on 10M rows x 9 float64 columns, Parquet and CSV; see docs/benchmarks.md.
# Installs the peers (python3-pandas, @duckdb/node-api under /var/cache/hpcml-bench),
# generates the table once (1.6 GB under $HPCML_BENCH_PROFILE_DATA, default
# /var/tmp/hpcml-bench-profile) and reuses it. Takes about 10 minutes.
bench-profile: build
	./scripts/bench-deps.sh profile
	$(GO) run ./bench/profile -hpcml $(BIN) -runs 3 -data $${HPCML_BENCH_PROFILE_DATA:-/var/tmp/hpcml-bench-profile}

# hpcml's NN engine (internal/nn, in-process) against PyTorch 1.13 CPU in the
# same run: training samples/s of an MLP (784-256-128-10) and the cnn
# algorithm's LeNet on MNIST, batch 64, 2 threads each, and the time to 97.5 %
# / 98.5 % test accuracy; first the pure-Go build, then -tags openblas (cgo,
# Debian's libopenblas). PyTorch runs in three configurations (its BLAS as
# installed, on one thread, or OpenBLAS's OpenMP build) and the fastest
# counts. Installs python3-torch and libopenblas-dev if missing, fetches MNIST
# (scripts/sample-data.sh); see docs/benchmarks.md. Takes about 12 minutes.
bench-train:
	./scripts/bench-deps.sh train
	./scripts/sample-data.sh
	$(GO) run ./bench/train
	$(GO) run -tags openblas ./bench/train

# hpcml's all-reduce (internal/collective; shared memory between ranks on one
# host, and over TCP) against torch.distributed's gloo backend and Open MPI's
# MPI_Allreduce (ob1 over tcp and over vader shared memory), 2 ranks on this
# machine, 1 KiB to 256 MiB: time, algbw, busbw and ratios, median of 5 runs;
# see docs/benchmarks.md. Installs python3-torch and Open MPI if missing.
# Takes about 5 minutes.
bench-allreduce:
	@command -v mpicc >/dev/null && /usr/bin/python3 -c 'import torch' 2>/dev/null || { \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	    openmpi-bin libopenmpi-dev python3-torch; }
	$(GO) run ./bench/allreduce -runs 5

# Data-parallel training: samples/s of the cnn algorithm's LeNet on MNIST with
# two single-threaded workers (separate processes) against one, hpcml
# (internal/train ranks over internal/collective) and PyTorch DDP over gloo in
# the same run, median of 3; see docs/benchmarks.md. Installs python3-torch if
# missing, fetches MNIST (scripts/sample-data.sh). Takes about 6 minutes.
bench-dataparallel:
	@/usr/bin/python3 -c 'import torch' 2>/dev/null || { \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-torch; }
	./scripts/sample-data.sh
	$(GO) run ./bench/dataparallel -runs 3

# hpcml serve (OIP JSON over loopback, vegeta as the load): the highest
# request rate at p99 <= 10 ms for a small MLP against a plain net/http
# handler running the same graph, and a small CNN with and without dynamic
# batching; see docs/benchmarks.md. Takes about 4 minutes.
bench-serve: build
	$(GO) run ./bench/serve -hpcml $(BIN)

bench-gateway: build
	$(GO) run ./bench/serve/gateway -hpcml $(BIN)

# Asynchronous inference: end-to-end latency (submit → result object) and
# throughput at a steady rate, against synchronous /invocations of the same
# replica through the gateway; see docs/benchmarks.md. About a minute.
bench-async: build
	$(GO) run ./bench/async -hpcml $(BIN) $(BENCH_ASYNC_FLAGS)

# hpcml serve --multi-model: latency of a model's first request (cold
# load), of a cached model (warm) and of round robin over more models than
# the cache holds, against the single-model server; see docs/benchmarks.md.
# 40 models of 4.5 MB, about a minute.
bench-multimodel: build
	$(GO) run ./bench/multimodel -hpcml $(BIN) $(BENCH_MULTIMODEL_FLAGS)

# hpcml transform (batch transform): rows/s with 1 and 2 worker jobs
# against scoring the same CSV files in one in-process loop (same model,
# same batch size); see docs/benchmarks.md. 2M rows, about a minute.
bench-transform: build
	$(GO) run ./bench/transform -hpcml $(BIN)

fmt:
	gofmt -w cmd internal web bench

clean:
	rm -rf bin
