"""PyTorch side of bench/train: the same MLP and CNN as hpcml's, trained the
same way, driven by bench/train/main.go over stdin/stdout.

    /usr/bin/python3 torch_bench.py DATA_DIR THREADS [LABEL]

DATA_DIR holds the MNIST IDX files (train-images-idx3-ubyte[.gz], ...).
Commands arrive one JSON object per line on stdin; each gets one JSON line
on stdout (progress and profiles go to stderr):

    {"cmd": "setup", "model": "mlp"|"cnn", "batch": 64, "lr": 0.001,
     "seed": 1, "init": "PATH", "shapes": [[256, 784], [256], ...]}
        builds the model, loads the initial weights hpcml drew (PATH: every
        parameter as little-endian float32, in order; hpcml's layouts are
        PyTorch's) and makes a fresh Adam
    {"cmd": "throughput", "warmup": 10, "steps": 200}
        runs warmup untimed steps, then times steps training steps
    {"cmd": "tta", "target": 0.985, "max_epochs": 10}
        trains from the initial weights, one shuffled epoch at a time,
        evaluating on the test set after each, until test accuracy >= target
    {"cmd": "profile", "steps": 20}
        torch.profiler's per-operator table of steps training steps (stderr)
    {"cmd": "quit"}

Only the training step (zero_grad, forward, loss, backward, optimizer step)
is timed for throughput; batches are views of a tensor shuffled once
beforehand, as on hpcml's side.
"""

import gzip
import json
import os
import struct
import sys
import time

import numpy as np
import torch
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


def load(data_dir, prefix):
    x = read_idx(find(data_dir, prefix + "-images-idx3-ubyte"))
    y = read_idx(find(data_dir, prefix + "-labels-idx1-ubyte"))
    x = torch.from_numpy(x.astype(np.float32) / np.float32(255))
    return x.reshape(len(x), 1, 28, 28), torch.from_numpy(y.astype(np.int64))


def build(name):
    # hpcml's mlp algorithm with hidden=256,128 and its cnn algorithm's
    # "lenet" (internal/train/algorithm.go), layer for layer.
    if name == "mlp":
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 256), nn.ReLU(),
            nn.Linear(256, 128), nn.ReLU(),
            nn.Linear(128, 10),
        )
    if name == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.25),
            nn.Linear(128, 10),
        )
    raise ValueError(f"unknown model {name}")


class Bench:
    def __init__(self, data_dir, label):
        self.label = label
        self.xtrain, self.ytrain = load(data_dir, "train")
        self.xtest, self.ytest = load(data_dir, "t10k")

    def setup(self, c):
        torch.manual_seed(c["seed"])
        self.batch, self.lr = c["batch"], c["lr"]
        self.model = build(c["model"])
        flat = np.fromfile(c["init"], dtype="<f4")
        params = list(self.model.parameters())
        shapes = [list(p.shape) for p in params]
        if shapes != c["shapes"]:
            raise ValueError(f"parameter shapes {shapes} differ from hpcml's {c['shapes']}")
        self.init = []
        off = 0
        for p in params:
            n = p.numel()
            self.init.append(torch.from_numpy(flat[off : off + n].copy()).reshape(p.shape))
            off += n
        if off != len(flat):
            raise ValueError(f"{c['init']}: {len(flat)} values for {off} parameters")
        self.reset()
        # Throughput batches: views of the training set shuffled once.
        g = torch.Generator().manual_seed(c["seed"])
        perm = torch.randperm(len(self.xtrain), generator=g)
        self.xs, self.ys = self.xtrain[perm].contiguous(), self.ytrain[perm].contiguous()
        self.cursor = 0
        return {"params": sum(p.numel() for p in params)}

    def reset(self):
        with torch.no_grad():
            for p, v in zip(self.model.parameters(), self.init):
                p.copy_(v)
        self.model.train()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.lr)

    def step(self, xb, yb):
        self.opt.zero_grad()
        loss = F.cross_entropy(self.model(xb), yb)
        loss.backward()
        self.opt.step()
        return loss

    def steps(self, n):
        b, nb = self.batch, len(self.xs) // self.batch
        for _ in range(n):
            lo = (self.cursor % nb) * b
            self.cursor += 1
            self.step(self.xs[lo : lo + b], self.ys[lo : lo + b])

    def throughput(self, c):
        self.steps(c["warmup"])
        cpu0, t0 = time.process_time(), time.perf_counter()
        self.steps(c["steps"])
        secs = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        return {"seconds": secs, "cpu_seconds": cpu, "samples_per_sec": c["steps"] * self.batch / secs}

    def accuracy(self):
        self.model.eval()
        correct = 0
        with torch.no_grad():
            for lo in range(0, len(self.xtest), 1000):
                out = self.model(self.xtest[lo : lo + 1000])
                correct += (out.argmax(1) == self.ytest[lo : lo + 1000]).sum().item()
        self.model.train()
        return correct / len(self.xtest)

    def tta(self, c):
        self.reset()
        g = torch.Generator().manual_seed(12345)
        n, b = len(self.xtrain), self.batch
        epochs, train_secs, eval_secs = [], 0.0, 0.0
        start = time.perf_counter()
        cpu0 = time.process_time()
        reached = False
        for epoch in range(1, c["max_epochs"] + 1):
            t0 = time.perf_counter()
            perm = torch.randperm(n, generator=g)
            for lo in range(0, n, b):
                idx = perm[lo : lo + b]
                self.step(self.xtrain[idx], self.ytrain[idx])
            t1 = time.perf_counter()
            acc = self.accuracy()
            t2 = time.perf_counter()
            train_secs += t1 - t0
            eval_secs += t2 - t1
            epochs.append({"epoch": epoch, "accuracy": acc, "train_seconds": t1 - t0, "eval_seconds": t2 - t1, "elapsed": t2 - start})
            print(f"bench/train: {self.label} epoch {epoch}: test accuracy {acc:.4f}, {t1 - t0:.1f}s train + {t2 - t1:.1f}s eval", file=sys.stderr, flush=True)
            if acc >= c["target"]:
                reached = True
                break
        return {
            "reached": reached, "epochs": epochs, "seconds": time.perf_counter() - start,
            "train_seconds": train_secs, "eval_seconds": eval_secs, "cpu_seconds": time.process_time() - cpu0,
        }

    def profile(self, c):
        self.steps(3)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            self.steps(c["steps"])
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25), file=sys.stderr, flush=True)
        return {}


def main():
    data_dir, threads = sys.argv[1], int(sys.argv[2])
    label = sys.argv[3] if len(sys.argv) > 3 else "pytorch"
    torch.set_num_threads(threads)
    bench = Bench(data_dir, label)
    info = {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "config": torch.__config__.show(),
    }
    print(json.dumps(info), flush=True)
    for line in sys.stdin:
        c = json.loads(line)
        cmd = c["cmd"]
        if cmd == "quit":
            break
        try:
            out = getattr(bench, cmd)(c)
        except Exception as e:  # reported to the driver, which stops
            out = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
