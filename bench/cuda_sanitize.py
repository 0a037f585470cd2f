"""A small steady-state call on the GPU, for compute-sanitizer (bench/cuda_check.sh runs it under
memcheck and racecheck). Odd sizes on purpose: m, Lq, Lk and Dv not multiples of the kernels'
blocks (128 neurons, 32 tokens, 64 columns), two heads, a key mask, float32 and float64.
Prints the largest difference from the CPU core, in units of the dtype's eps."""

import numpy as np

import tripartite

rng = np.random.default_rng(7)
for dtype in (np.float32, np.float64):
    q = (0.5 * rng.standard_normal((2, 45, 24))).astype(dtype)
    k = (0.5 * rng.standard_normal((2, 37, 24))).astype(dtype)
    v = rng.standard_normal((2, 37, 70)).astype(dtype)
    mask = np.ones((2, 37), dtype=bool)
    mask[1, 30:] = False
    y_gpu = tripartite.attention(q, k, v, n_hidden=300, seed=3, key_mask=mask, device="cuda")
    y_cpu = tripartite.attention(q, k, v, n_hidden=300, seed=3, key_mask=mask)
    err = float(np.max(np.abs(y_gpu - y_cpu)) / np.max(np.abs(y_cpu)) / np.finfo(dtype).eps)
    print(f"{np.dtype(dtype).name}: max |y_gpu - y_cpu| / max |y_cpu| = {err:.2f} eps")
