"""The steady state on a GPU (device="cuda") at the paper's scale, beside the CPU core on the same
machine and the GPU's own limits measured in the same run.

    python bench/cuda_attention.py [--repeats 10] [--json FILE]

Needs a build with TRIPARTITE_CUDA=ON and a GPU. Prints, for 1 and 12 heads (L = 197, D = 64,
m = 1e5, float32 and float64):
- the whole call, tripartite.attention(..., device="cuda") from host arrays to host arrays (it
  uploads W, 25.6 MB a head in float32, on every call);
- the kernels alone (CUDA events around them, transfers excluded), and their rate against the
  GPU's float32 / float64 matrix-product rate measured here with PyTorch (TF32 off), when PyTorch
  is installed;
- the core's call in its phases (the host's scaling of the inputs, allocation, uploads, kernels,
  downloads, and the whole call with the buffers' release), and what the Python layer adds;
- the CPU core on all of this machine's cores, and GPU / CPU in alternating pairs;
- PyTorch's exact softmax attention (scaled_dot_product_attention) on the same GPU, for scale;
- the error against the float64 NumPy reference (and of the CPU core, for comparison).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tripartite  # noqa: E402
from tripartite import _core, reference  # noqa: E402

import run  # noqa: E402  (bench/run.py: its timing helpers)
from cases import PAPER, paper_problem, steady_state_flops  # noqa: E402

spread = run.spread


def timeit(fn, repeats):
    """(median, min, max) of `repeats` calls after one untimed call (bench/run.py's timeit)."""
    return run.timeit(fn, repeats, warmup=0.0)


def fmt(t, unit=1e3, suffix="ms"):
    return f"{t[0] * unit:.3f} {suffix} [{t[1] * unit:.3f}, {t[2] * unit:.3f}]"


def torch_limits(repeats):
    """The GPU's float32 and float64 matrix-product rates (TF32 off) and a device copy's bytes/s."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cuda.matmul.allow_tf32 = False
    out = {"gpu": torch.cuda.get_device_name(0)}
    for name, dt, n in (("sgemm", torch.float32, 8192), ("dgemm", torch.float64, 8192)):
        a = torch.randn(n, n, device="cuda", dtype=dt)
        b = torch.randn(n, n, device="cuda", dtype=dt)
        for _ in range(3):
            a @ b
        torch.cuda.synchronize()
        times = []
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            a @ b
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        out[name + "_gflops"] = 2 * n**3 / statistics.median(times) / 1e9
        del a, b
    x = torch.empty(2**30 // 4, device="cuda", dtype=torch.float32)
    y = torch.empty_like(x)
    times = []
    for _ in range(repeats + 2):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        y.copy_(x)
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    out["copy_GBps"] = 2 * 2**30 / statistics.median(times[2:]) / 1e9
    del x, y
    torch.cuda.empty_cache()
    return out


def torch_sdpa(q, k, v, repeats):
    """PyTorch's exact softmax attention on the GPU, float32 (inputs already on the device)."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    tq, tk, tv = (torch.from_numpy(np.ascontiguousarray(x)).cuda()[None] for x in (q, k, v))
    for _ in range(5):
        F.scaled_dot_product_attention(tq, tk, tv)
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        F.scaled_dot_product_attention(tq, tk, tv)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return spread(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if not tripartite.cuda_available():
        print("no CUDA build or no GPU: nothing to measure (build with TRIPARTITE_CUDA=ON on a machine with a GPU)")
        return 0
    results = {"devices": tripartite.cuda_devices(), "cpu_cores": os.cpu_count(), "cases": {}}
    print(f"GPU: {results['devices'][0]}; CPU cores: {os.cpu_count()}; L = {PAPER['L']}, D = {PAPER['D']}, "
          f"m = {PAPER['m']}")
    limits = torch_limits(args.repeats)
    results["limits"] = limits
    if limits:
        print(f"limits (PyTorch, same run): sgemm {limits['sgemm_gflops']:.0f} GFLOP/s, dgemm "
              f"{limits['dgemm_gflops']:.0f} GFLOP/s, device copy {limits['copy_GBps']:.0f} GB/s")
    s = math.sqrt(PAPER["D"] ** -0.5)
    for dtype in (np.float32, np.float64):
        for heads in (1, 12):
            q, k, v, W = paper_problem(heads, dtype)
            name = f"{heads}h {np.dtype(dtype).name}"
            flops = steady_state_flops(heads)
            kernel = _core.attention_cuda_float32 if dtype == np.float32 else _core.attention_cuda_float64
            whole = timeit(lambda: tripartite.attention(q, k, v, hidden_weights=W, device="cuda"), args.repeats)
            kms, times = [], []
            for _ in range(args.repeats + 2):
                times.append(kernel(W, None, q, k, v, s)[3])
                kms.append(times[-1]["kernels_gpu"] / 1e3)
            kern = spread(kms[2:])
            # the core's call (host arrays to host arrays) in its phases: medians, ms
            phases = {name: statistics.median(t[name] for t in times[2:]) for name in times[0]}
            entry = {"whole_call_s": whole, "kernels_s": kern, "gflops": flops / kern[0] / 1e9, "core_call_ms": phases}
            line = f"{name}: whole call {fmt(whole)}; kernels {fmt(kern)} = {entry['gflops']:.0f} GFLOP/s"
            if limits:
                lim = limits["sgemm_gflops" if dtype == np.float32 else "dgemm_gflops"]
                entry["of_gemm"] = entry["gflops"] / lim
                line += f" ({100 * entry['of_gemm']:.0f} % of {'s' if dtype == np.float32 else 'd'}gemm)"
            print(line, flush=True)
            print("  the core's call, medians in ms: " + ", ".join(f"{n} {t:.3f}" for n, t in phases.items())
                  + f"; the Python layer's part of the whole call: {whole[0] * 1e3 - phases['call']:.3f}", flush=True)
            if heads == 1 or dtype == np.float32:
                cpu = lambda: tripartite.attention(q, k, v, hidden_weights=W)  # noqa: E731
                gpu = lambda: tripartite.attention(q, k, v, hidden_weights=W, device="cuda")  # noqa: E731
                pairs = max(3, args.repeats // 2 if heads == 1 else 3)
                tc, tg, ratio = run.paired(cpu, gpu, pairs)  # each timed call after an untimed one
                entry.update(cpu_s=tc, gpu_in_pairs_s=tg, cpu_over_gpu=ratio, cpu_over_gpu_kernels=tc[0] / kern[0])
                print(f"  CPU core ({os.cpu_count()} cores) {fmt(tc)}; GPU whole call {fmt(tg)}; "
                      f"CPU / GPU {ratio[0]:.1f}x [{ratio[1]:.1f}, {ratio[2]:.1f}] in {pairs} pairs "
                      f"({entry['cpu_over_gpu_kernels']:.0f}x against the kernels alone)", flush=True)
            if heads == 1:
                y_gpu = tripartite.attention(q, k, v, hidden_weights=W, device="cuda")
                y_cpu = tripartite.attention(q, k, v, hidden_weights=W)
                y_ref = reference.random_feature_attention(q.astype(np.float64), k.astype(np.float64),
                                                           v.astype(np.float64), W.astype(np.float64))
                scale = np.max(np.abs(y_ref))
                entry["err_gpu"] = float(np.max(np.abs(y_gpu - y_ref)) / scale)
                entry["err_cpu"] = float(np.max(np.abs(y_cpu - y_ref)) / scale)
                eps = float(np.finfo(dtype).eps)
                print(f"  max |y - y_ref| / max |y_ref| against the float64 reference: GPU {entry['err_gpu']:.2e} "
                      f"({entry['err_gpu'] / eps:.1f} eps), CPU {entry['err_cpu']:.2e} ({entry['err_cpu'] / eps:.1f} eps)")
                if dtype == np.float32:
                    sdpa = torch_sdpa(q, k, v, args.repeats)
                    if sdpa:
                        entry["torch_sdpa_s"] = sdpa
                        print(f"  PyTorch softmax attention (scaled_dot_product_attention, float32, on the GPU): "
                              f"{fmt(sdpa)}")
            results["cases"][name] = entry
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
