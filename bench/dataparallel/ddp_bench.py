"""PyTorch side of bench/dataparallel: one rank of data-parallel training of
hpcml's cnn algorithm's default LeNet on MNIST, DistributedDataParallel
over gloo, one intra-op thread per process.

    RANK=r WORLD_SIZE=n MASTER_ADDR=127.0.0.1 MASTER_PORT=p \\
      /usr/bin/python3 ddp_bench.py DATA_DIR BATCH WARMUP STEPS SEED LR

DATA_DIR holds train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]
(the driver writes a subset of exactly (WARMUP+STEPS) x BATCH x n images).
With WORLD_SIZE=1 the model is trained alone, without DDP or a process
group, as hpcml's one worker trains without a Comm.

Every rank walks the same seeded permutation in global batches of
BATCH x n and takes its slice of each (the batch gathered by index, as
hpcml's trainer does); zero_grad, forward, cross-entropy, backward (DDP
all-reduces the gradients, averaged, in its buckets of 25 MB: the whole
net is one bucket), Adam step. After WARMUP steps the ranks meet at a
barrier and time STEPS steps. Each rank prints one JSON line: its wall
time, its CPU time (every thread of the process, gloo's included) and
where the steps' time went; rank 0 adds the machine's busy CPU time and
the hypervisor's steal over the same span (/proc/stat).
"""

import gzip
import json
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(data_dir, name):
    for n in (name, name + ".gz"):
        p = os.path.join(data_dir, n)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(f"{name}[.gz] not in {data_dir}")


def build():
    # hpcml's cnn algorithm's "lenet" with its defaults
    # (internal/train/algorithm.go), layer for layer.
    return nn.Sequential(
        nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.25),
        nn.Linear(128, 10),
    )


def busy_cpu():
    """The machine's busy CPU seconds and the hypervisor's stolen ones:
    /proc/stat's first line; busy is user, nice, system, irq and softirq
    (guest time is counted in user already), as the Go side counts them."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    busy = sum(v for i, v in enumerate(fields) if i not in (3, 4) and i < 7)
    return busy / hz, fields[7] / hz


def main():
    data_dir = sys.argv[1]
    batch, warmup, steps, seed = (int(a) for a in sys.argv[2:6])
    lr = float(sys.argv[6])
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    torch.manual_seed(seed + rank)

    x = read_idx(find(data_dir, "train-images-idx3-ubyte"))
    y = read_idx(find(data_dir, "train-labels-idx1-ubyte"))
    x = torch.from_numpy(x.astype(np.float32) / np.float32(255)).reshape(len(x), 1, 28, 28)
    y = torch.from_numpy(y.astype(np.int64))
    gb = batch * world
    if len(x) < (warmup + steps) * gb:
        raise ValueError(f"{len(x)} images for {warmup + steps} steps of {gb}")

    torch.manual_seed(seed)  # the same initial weights on every rank (DDP broadcasts rank 0's anyway)
    model = build()
    if world > 1:
        dist.init_process_group("gloo", rank=rank, world_size=world)
        model = nn.parallel.DistributedDataParallel(model)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))

    phases = {"data": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}

    def step(i):
        t0 = time.perf_counter()
        g = perm[i * gb : (i + 1) * gb]
        idx = g[rank * len(g) // world : (rank + 1) * len(g) // world]
        xb, yb = x[idx], y[idx]
        t1 = time.perf_counter()
        opt.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        t2 = time.perf_counter()
        loss.backward()  # with DDP: waits for the gradients' all-reduce
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
        phases["data"] += t1 - t0
        phases["forward"] += t2 - t1
        phases["backward"] += t3 - t2
        phases["optimizer"] += t4 - t3

    for i in range(warmup):
        step(i)
    if world > 1:
        dist.barrier()
    for k in phases:
        phases[k] = 0.0
    busy0, steal0 = busy_cpu()
    cpu0, t0 = time.process_time(), time.perf_counter()
    for i in range(warmup, warmup + steps):
        step(i)
    secs = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    busy1, steal1 = busy_cpu()
    out = {"rank": rank, "world": world, "seconds": secs, "cpu_seconds": cpu, "phases": phases,
           "torch": torch.__version__, "threads": torch.get_num_threads(), "python": sys.version.split()[0]}
    if rank == 0:
        out["machine_busy_seconds"] = busy1 - busy0
        out["machine_steal_seconds"] = steal1 - steal0
    print(json.dumps(out), flush=True)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
