"""torch.distributed all_reduce (gloo) of float32 sums, timed like
bench/allreduce's other runners: for each size, warm-up iterations, a
barrier, timed iterations; the average time per iteration, the maximum over
ranks, printed by rank 0 as "SIZE_BYTES ITERS SECONDS".

usage: RANK=r WORLD_SIZE=n MASTER_ADDR=a MASTER_PORT=p \
       python3 gloo_allreduce.py MIN_BYTES MAX_BYTES FACTOR TARGET_BYTES MIN_ITERS MAX_ITERS
"""
import os
import sys
import time

import torch
import torch.distributed as dist


def main():
    minb, maxb, factor, target, mini, maxi = (int(a) for a in sys.argv[1:7])
    # One compute thread per process, as the two ranks share two cores;
    # gloo's own I/O threads are not affected.
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="env://")
    rank = dist.get_rank()
    buf = torch.zeros(maxb // 4, dtype=torch.float32)
    size = minb
    while size <= maxb:
        t = buf[: size // 4]
        iters = min(max(target // size, mini), maxi)
        for _ in range(max(2, iters // 10)):
            dist.all_reduce(t)
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(iters):
            dist.all_reduce(t)
        avg = torch.tensor([(time.perf_counter() - t0) / iters], dtype=torch.float64)
        dist.all_reduce(avg, op=dist.ReduceOp.MAX)
        if rank == 0:
            print(size, iters, "%.9f" % avg.item(), flush=True)
        size *= factor
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
