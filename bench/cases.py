"""The benchmark registry: each case builds its inputs once and returns the callable to time.

Used by both ``bench/run.py`` (one command, a table and JSON) and ``bench/test_bench.py``
(pytest-benchmark)."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

import tripartite

# Writing-phase sizes: (n_hidden, d_value) giving 1M, 6.4M and 64M synapses at D = 64.
SYNAPSE_SIZES = {"1M": (16384, 64), "6.4M": (100000, 64), "64M": (1000000, 64)}
PAPER = dict(L=197, D=64, m=100000)  # the paper's scale: ~197 tokens, D = 64, m = 1e5


@dataclass
class Case:
    name: str
    run: Callable[[], object]
    work: float  # units of work per call (synapse-updates, tokens, ...)
    unit: str


def inputs(L, D, Dv, heads=1, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    shape = (heads, L) if heads > 1 else (L,)
    q = (rng.standard_normal(shape + (D,)) * D**-0.25).astype(dtype)  # |q~|^2 ~ 1
    k = (rng.standard_normal(shape + (D,)) * D**-0.25).astype(dtype)
    v = rng.standard_normal(shape + (Dv,)).astype(dtype)
    return q, k, v


def network_write(size: str, integrator: str, dtype, threads: int, tokens: int, net=None) -> Case:
    """The writing phase of the continuous-time network. A synapse-update is one synapse advanced
    by one dt: Dv m (t_write/dt) L per call, whatever the kernel does internally."""
    m, Dv = SYNAPSE_SIZES[size]
    if net is None:
        net = tripartite.NeuronAstrocyteNetwork(64, Dv, m, dtype=dtype, integrator=integrator, num_threads=threads)
    net.num_threads = threads
    _, k, v = inputs(tokens, 64, Dv, dtype=dtype)
    net.write(k[:1], v[:1])  # warm the caches and the thread team
    steps = round(net.params["t_write"] / net.params["dt"])
    if integrator == "exact":
        return Case(f"exact write {size} {np.dtype(dtype).name} {threads}t", lambda: net.write(k, v), tokens, "tokens")
    return Case(
        f"euler write {size} {np.dtype(dtype).name} {threads}t", lambda: net.write(k, v), Dv * m * steps * tokens, "synapse-updates"
    )


@functools.lru_cache(maxsize=1)
def paper_problem(heads: int, dtype=np.float32):
    """q, k, v (heads, L, D) and W (heads, m, D) at the paper's scale, drawn once and shared by our
    kernel and its peers (the last problem is kept: 12 heads of W are 300 MiB)."""
    L, D, m = PAPER["L"], PAPER["D"], PAPER["m"]
    q, k, v = (x.reshape(heads, L, D) for x in inputs(L, D, D, heads=heads, dtype=dtype))
    W = tripartite.draw_hidden_weights(m, D, heads=heads, dtype=dtype)
    return q, k, v, W


def _suffix(dtype) -> str:
    return "" if dtype == np.float32 else f" {np.dtype(dtype).name}"


def steady_state(heads: int, threads: int, dtype=np.float32, causal: bool = False) -> Case:
    q, k, v, W = paper_problem(heads, dtype)
    return Case(
        f"steady state {heads}h ours{' causal' if causal else ''} {threads}t{_suffix(dtype)}",
        lambda: tripartite.attention(q, k, v, hidden_weights=W, num_threads=threads, causal=causal),
        heads * PAPER["L"],
        "queries",
    )


def numpy_steady_state(q, k, v, W):
    """The same mathematics with NumPy/BLAS matrix products, head by head (the fair peer)."""
    out = []
    for h in range(W.shape[0]):
        s = q.shape[-1] ** -0.25
        qs, ks = q[h] * s, k[h] * s
        lk = ks @ W[h].T - 0.5 * np.sum(ks * ks, axis=1, keepdims=True)
        lq = qs @ W[h].T - 0.5 * np.sum(qs * qs, axis=1, keepdims=True)
        pk = np.exp(lk - lk.max())
        pq = np.exp(lq - lq.max(axis=1, keepdims=True))
        H = v[h].T @ pk
        g = pk.sum(axis=0)
        out.append((pq @ H.T) / (pq @ g)[:, None])
    return np.stack(out)


def blas_products(q, k, v, W):
    """The steady state's four matrix products alone, with NumPy/BLAS, at their shapes and in
    their order: key log-rates K W^T (L x D by D x m), the write V^T (K W^T) (Dv x L by L x m),
    query log-rates Q W^T, and the readout (Q W^T) H^T (L x m by m x Dv). The log-rates stand in
    for the features: no scaling, no exponentials, no astrocyte sums, so the result is not
    attention. It is what the machine's BLAS takes for the work that steady_state_flops counts
    (BLAS's products on these thin shapes, not its square sgemm): a floor for any steady state
    built on it."""
    out = []
    for h in range(W.shape[0]):
        lk = k[h] @ W[h].T
        H = v[h].T @ lk
        lq = q[h] @ W[h].T
        out.append(lq @ H.T)
    return np.stack(out)


def per_token_loop(q, k, v, W):
    """The paper's notebooks' way, extended to the values: a Python loop over tokens, then over
    queries. The notebooks (kozleo/Building_Transformers_from_Neurons_and_Astrocytes,
    `get_astro_responses`) compute only the astrocyte's response this way, in NumPy's default
    float64: `rfa_key_sum += phi(k)` per key, `np.dot(phi(q), rfa_key_sum)` per query, with
    `phi(x) = np.exp(-0.5*np.log(m) + W @ x - 0.5*np.linalg.norm(x)**2)`. Here the same loop also
    writes every value into the synapses (`H += np.outer(v, phi)`) and reads them, so that it
    returns the attention output that ours returns, in the dtype of its inputs."""
    out = []
    m = W.shape[1]
    for h in range(W.shape[0]):
        s = q.shape[-1] ** -0.25
        H = np.zeros((v.shape[-1], m), dtype=W.dtype)
        g = np.zeros(m, dtype=W.dtype)
        for tau in range(k.shape[1]):
            x = k[h, tau] * s
            phi = np.exp(np.dot(W[h], x) - 0.5 * np.dot(x, x)) / math.sqrt(m)
            H += np.outer(v[h, tau], phi)
            g += phi
        ys = []
        for t in range(q.shape[1]):
            x = q[h, t] * s
            phi = np.exp(np.dot(W[h], x) - 0.5 * np.dot(x, x)) / math.sqrt(m)
            ys.append(np.dot(H, phi) / np.dot(g, phi))
        out.append(np.stack(ys))
    return np.stack(out)


def steady_state_flops(heads: int, L: int = PAPER["L"], D: int = PAPER["D"], Dv: int = PAPER["D"], m: int = PAPER["m"]) -> float:
    """Floating-point operations of the steady state's four products per call (bidirectional,
    Lq = Lk = L): key and query log-rates (L x D by D x m each), the Hebbian write (Dv x L by
    L x m) and the readout (L x m by m x Dv), two per multiply-add. The exponentials and the
    astrocyte's sums (g and the denominators, 3 L m) are not counted: 10.09 GFLOP per head at the
    paper's scale. Any implementation, ours or NumPy's, does at least these products."""
    return heads * 2.0 * m * L * (2 * D + 2 * Dv)


def per_token_loop_bytes(heads: int, L: int = PAPER["L"], D: int = PAPER["D"], Dv: int = PAPER["D"],
                         m: int = PAPER["m"], itemsize: int = 4) -> float:
    """Bytes that `per_token_loop` moves at least, counting each NumPy call as reading its array
    operands and writing its result once (no write-allocate, like the triad's 12 bytes per
    element); the length-m vectors are left out. Per key: W @ x reads W (m D), np.outer writes an
    Dv x m temporary, H += reads H and the temporary and writes H (4 m Dv). Per query: W @ x and
    H @ phi read W and H (m D + m Dv). 35.3 GB per head at the paper's scale in float32, where W and
    H are 25.6 MB each: the loop alternates between them, more than this machine's 32 MB L3 holds."""
    return heads * float(itemsize) * (L * (m * D + 4 * m * Dv) + L * (m * D + m * Dv))


def steady_state_peer(heads: int, peer: str, dtype=np.float32) -> Case:
    q, k, v, W = paper_problem(heads, dtype)
    fn = {"numpy": numpy_steady_state, "per-token loop": per_token_loop, "BLAS products alone": blas_products}[peer]
    return Case(f"steady state {heads}h {peer}{_suffix(dtype)}", lambda: fn(q, k, v, W), heads * PAPER["L"], "queries")
