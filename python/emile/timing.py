"""The reference's floors, timed by the rules a candidate is timed by
(src/worker/evaluate.c, time_kernel): two input sets alternated at random,
warm-up runs first (2 on the cpu, 3 on cuda), then as many timed runs as fit
the budget (1 s on the cpu, 5 to 50 runs; 0.3 s on cuda, 20 to 200 runs),
the caches flushed before every run (a buffer twice the last-level cache
written on the cpu; twice the L2 zeroed on cuda), and the median reported.
On cuda a run is timed with events on the current stream around the
forward; on the cpu with the monotonic clock around it.
"""
import glob
import random
import time

import torch

CPU_BUDGET_S, CPU_REPS = 1.0, (5, 50)
CUDA_BUDGET_S, CUDA_REPS = 0.3, (20, 200)


def _llc_bytes():
    """The largest data/unified cache of cpu0 from sysfs (sysconf lies on
    some VMs); 32 MiB when sysfs says nothing."""
    best = 0
    for d in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*"):
        try:
            kind = open(d + "/type").read().strip()
            size = open(d + "/size").read().strip()
        except OSError:
            continue
        if kind == "Instruction":
            continue
        mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(size[-1:], 1)
        try:
            n = int(size.rstrip("KMG")) * mult
        except ValueError:
            continue
        best = max(best, n)
    return best or 32 << 20


class Flusher:
    def __init__(self, device):
        self.device = device
        if device.type == "cuda":
            l2 = torch.cuda.get_device_properties(device).L2_cache_size
            self.buf = torch.empty(max(2 * l2, 1 << 20), dtype=torch.uint8, device=device)
        else:
            self.buf = torch.empty(min(2 * _llc_bytes(), 512 << 20), dtype=torch.uint8)

    def __call__(self):
        if self.device.type == "cuda":
            self.buf.zero_()
        else:
            self.buf.fill_(random.getrandbits(8))


def time_forward(fn, sets, device, rng):
    """Median etc. of fn(*inputs) over the two sets; times in ns."""
    cuda = device.type == "cuda"
    flush = Flusher(device)
    warmup = 3 if cuda else 2
    budget, (lo, hi) = (CUDA_BUDGET_S, CUDA_REPS) if cuda else (CPU_BUDGET_S, CPU_REPS)

    def one(inputs):
        flush()
        if cuda:
            stream = torch.cuda.current_stream(device)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record(stream)
            fn(*inputs)
            end.record(stream)
            end.synchronize()
            return start.elapsed_time(end) * 1e6
        t0 = time.perf_counter_ns()
        fn(*inputs)
        return float(time.perf_counter_ns() - t0)

    with torch.no_grad():
        est = 0.0
        for _ in range(warmup):
            est = one(sets[rng.randrange(len(sets))])
        reps = int(budget * 1e9 / est) if est > 0 else 10
        reps = max(lo, min(hi, reps))
        times = [one(sets[rng.randrange(len(sets))]) for _ in range(reps)]
    s = sorted(times)
    return {"times_ns": times, "median_ms": s[len(s) // 2] * 1e-6, "min_ms": s[0] * 1e-6,
            "reps": reps, "warmup": warmup}
