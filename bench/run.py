"""The benchmark suite in one command: prints a table and writes JSON.

    python bench/run.py [--quick] [--json bench-results.json] [--skip-brian2] [--sections 1,3,4,5]

Every figure is measured in this run, beside the machine's own limits measured in the same run
(memory bandwidth by a STREAM triad, float32 FMA throughput of register-only chains on 1 and 2
threads, float32 GEMM throughput by NumPy's BLAS). Each timing is the median of --repeats calls
(after at least 0.25 s of warm-up calls), with its range. Thread scaling and the per-token loop
are also timed alternately against ours, pair by pair, and reported as the median of the per-pair
ratios (beside the machine's own FMA ratio for threads): this VM drifts by more than the effects
being measured.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import cases  # noqa: E402
from brian2_writing import cpu_model  # noqa: E402  (standard library only at import)

import tripartite  # noqa: E402
from tripartite import _core  # noqa: E402


def spread(values):
    """(median, min, max)."""
    return statistics.median(values), min(values), max(values)


def timeit(fn, repeats, warmup=0.25):
    """Median, min and max of `repeats` timed calls, after warming up for at least `warmup`
    seconds (one call at least): on this VM an idle second core takes a while to come back."""
    start = time.perf_counter()
    fn()
    while time.perf_counter() - start < warmup:
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return spread(times)


def paired(fn_a, fn_b, repeats, settle=0.0):
    """Times fn_a and fn_b alternately, so that the machine's drift hits both alike. Each timed
    call follows an untimed one of the same function (a core left idle by the other side comes
    back first), and `settle` seconds of sleep before that let the other side's idle threads
    (OpenBLAS spins for a while after each call) go to sleep. Returns (a, b, ratio) as
    (median, min, max), ratio = a / b per pair."""
    ta, tb = [], []
    for _ in range(repeats):
        for fn, times in ((fn_a, ta), (fn_b, tb)):
            time.sleep(settle)
            fn()
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return spread(ta), spread(tb), spread([x / y for x, y in zip(ta, tb)])


def machine_limits(repeats):
    n = 1 << 26  # 3 x 256 MiB: far out of cache
    a, b, c = np.zeros(n, np.float32), np.ones(n, np.float32), np.ones(n, np.float32)
    out = {}
    for threads in (1, 2):
        med, lo, hi = timeit(lambda: _core.triad(a, b, c, 2.0, threads), repeats)
        out[f"triad_GBps_{threads}t"] = 12 * n / med / 1e9
    # Compute limit: register-only FMA chains, 1 and 2 threads alternately (their ratio is the
    # best any compute-bound kernel can scale on this machine at this moment).
    flops = []
    for _ in range(max(5, repeats)):
        flops.append((_core.fma_throughput(1, 20_000_000), _core.fma_throughput(2, 20_000_000)))
    out["fma_GFLOPs_1t"] = statistics.median(f[0] for f in flops) / 1e9
    out["fma_GFLOPs_2t"] = statistics.median(f[1] for f in flops) / 1e9
    ratio = spread([f[1] / f[0] for f in flops])
    out["fma_2t_over_1t"], out["fma_2t_over_1t_min"], out["fma_2t_over_1t_max"] = ratio
    x = np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)
    med, _, _ = timeit(lambda: x @ x, repeats)
    out["sgemm_GFLOPs"] = 2 * 2048**3 / med / 1e9
    return out


def row(results, case, repeats, against=None, times=None, **extra):
    """Times `case` and prints a line; `against(entry)`, if given, adds fields to the entry and
    returns text for the end of the line (the figure against the machine's limits). `times`
    (median, min, max), if given, are the case's timings measured elsewhere (in pairs), not timed
    again."""
    med, lo, hi = timeit(case.run, repeats) if times is None else times
    rate = case.work / med
    entry = dict(name=case.name, seconds_median=med, seconds_min=lo, seconds_max=hi, unit=case.unit, rate=rate, **extra)
    results.append(entry)
    tail = against(entry) if against else ""
    print(f"  {case.name:<38} {med * 1e3:10.2f} ms  [{lo * 1e3:.2f}, {hi * 1e3:.2f}]  {rate:14.4g} {case.unit}/s{tail}", flush=True)
    return entry


def fma_limit(limits, threads, itemsize=4):
    """The FMA chains' GFLOP/s on `threads` threads, for itemsize-byte floats (float64: half the
    lanes of the float32 chains measured)."""
    return limits[f"fma_GFLOPs_{threads}t"] * (4 / itemsize)


def gbps(entry, nbytes):
    """The row's bytes per second (GB/s), into the entry with the bytes counted (the rule for the
    exact integrator's rows changed in 0fa0e0d: one pass per segment of windows, not per token)."""
    entry["GB_moved"] = nbytes / 1e9
    entry["GBps"] = nbytes / entry["seconds_median"] / 1e9
    return entry["GBps"]


def update_bounds(limits, threads, itemsize):
    """The two bounds of a step-by-step writing phase, in synapse-updates/s: one multiply-add per
    update (the float32 FMA limit / 2 flops, halved again for float64's half as many lanes) and
    one read and one write of each synapse per dt (the triad's bandwidth / (2 itemsize))."""
    return fma_limit(limits, threads, itemsize) * 1e9 / 2, limits[f"triad_GBps_{threads}t"] * 1e9 / (2 * itemsize)


def add_bound_multiples(entry, limits, threads, itemsize):
    """entry["rate"] (synapse-updates/s) as multiples of the two update_bounds, into the entry."""
    fma, triad = update_bounds(limits, threads, itemsize)
    entry["x_fma_bound"], entry["x_triad_bound"] = entry["rate"] / fma, entry["rate"] / triad


def against_update_bounds(limits, threads, itemsize, nbytes):
    def text(entry):
        add_bound_multiples(entry, limits, threads, itemsize)
        gbps(entry, nbytes)
        return f"  = {entry['x_fma_bound']:.1f}x FMA-, {entry['x_triad_bound']:.0f}x triad-bound"
    return text


def against_triad(limits, threads, nbytes):
    """The bytes a call must move at least (one pass over the synapses and the weights per
    segment of windows) per second, against the triad of as many threads (the 1M network's
    synapses fit in the L3 cache, so it can pass the triad)."""
    def text(entry):
        entry["of_triad"] = gbps(entry, nbytes) / limits[f"triad_GBps_{threads}t"]
        return f"  {entry['GBps']:.1f} GB/s = {entry['of_triad']:.0%} of the {threads}-thread triad"
    return text


def flop_rate(flops, seconds, limits, threads, itemsize=4):
    """(GFLOP/s, its fraction of the FMA limit of as many threads) for `flops` done in `seconds`."""
    rate = flops / seconds / 1e9
    return rate, rate / fma_limit(limits, threads, itemsize)


def against_fma(limits, threads, flops, itemsize=4):
    """The four products' FLOP/s against the FMA limit of as many threads (halved for float64's
    half as many lanes)."""
    def text(entry):
        entry["GFLOPs"], entry["of_fma"] = flop_rate(flops, entry["seconds_median"], limits, threads, itemsize)
        return f"  {entry['GFLOPs']:.1f} GFLOP/s = {entry['of_fma']:.0%} of the FMA limit" + (" (float64 lanes)" if itemsize == 8 else "")
    return text


def peak_rss(code: str) -> dict:
    """Runs `code` in a fresh interpreter that prints the bytes of state + inputs + outputs;
    returns that and the process's peak resident set size."""
    # VmHWM (not ru_maxrss, which Linux carries over from the forking parent) is this
    # interpreter's own high-water mark.
    # The baseline is the interpreter with numpy and tripartite imported, before any array is
    # made: what the process costs whatever the network's size.
    status = "[int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('{}')][0]"
    script = (
        "import numpy, tripartite\n"
        f"baseline = {status.format('VmRSS')}\n"
        + textwrap.dedent(code)
        + f"\nprint(baseline)\nprint({status.format('VmHWM')})\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    payload, baseline, rss = int(out[-3]), int(out[-2]), int(out[-1])
    return dict(payload_bytes=payload, peak_rss_bytes=rss, baseline_rss_bytes=baseline, ratio=rss / payload,
                ratio_above_baseline=(rss - baseline) / payload)


NETWORK_RSS = """
import numpy as np, tripartite
net = tripartite.NeuronAstrocyteNetwork(64, 64, {m}, heads={heads}, dtype=np.float32)
rng = np.random.default_rng(0)
k = (rng.standard_normal(({heads}, 4, 64)) * 0.35).astype(np.float32)
v = rng.standard_normal(({heads}, 4, 64)).astype(np.float32)
net.write(k, v)
y = net.read(k)
state = net._H.nbytes + net._W.nbytes + net._g.nbytes + net._h.nbytes
print(state + k.nbytes + v.nbytes + y.nbytes)
"""

ATTENTION_RSS = """
import numpy as np, tripartite
rng = np.random.default_rng(0)
q, k, v = ((rng.standard_normal(({heads}, 197, 64)) * 0.35).astype(np.float32) for _ in range(3))
y = tripartite.attention(q, k, v, n_hidden={m})
# state: the hidden weights attention() draws (the synapses live in per-thread block scratch)
print({heads} * {m} * 64 * 4 + q.nbytes * 3 + y.nbytes)
"""


SECTIONS = ("1", "3", "4", "5")


def _sections(text: str) -> set:
    """The --sections argument: a comma-separated subset of SECTIONS (spaces allowed)."""
    chosen = {part.strip() for part in text.split(",") if part.strip()}
    if not chosen or not chosen <= set(SECTIONS):
        raise argparse.ArgumentTypeError(f"must be a comma-separated subset of {','.join(SECTIONS)}, got {text!r}")
    return chosen


def _git(*cmd: str):
    """git's answer in the bench's folder, or None when git cannot answer (no git, not a
    checkout, or it hangs): the JSON then says it does not know rather than 'clean'."""
    try:
        return subprocess.run(["git", "--no-optional-locks", *cmd], capture_output=True, text=True, check=True,
                              timeout=10, cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return None


def machine_info(args, repeats: int) -> dict:
    """What the JSON needs to stand on its own: the commit (and whether the tree differed from
    it), the versions, the CPU, the thread settings of the environment and the arguments."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    core = Path(_core.__file__)
    return dict(
        date_utc=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        commit=_git("rev-parse", "HEAD"), tree_modified=None if status is None else bool(status),
        core=str(core), core_built_utc=datetime.datetime.fromtimestamp(core.stat().st_mtime, datetime.timezone.utc)
        .isoformat(timespec="seconds"),
        tripartite=tripartite.__version__, platform=platform.platform(), cpu=cpu_model(), cpus=os.cpu_count(),
        python=sys.version.split()[0], numpy=np.__version__, openmp=_core.openmp_enabled(), max_threads=_core.max_threads(),
        environment={k: v for k, v in os.environ.items() if k.startswith(("OMP_", "OPENBLAS_", "MKL_", "TRIPARTITE_"))},
        arguments=dict(vars(args), sections=sorted(args.sections), repeats_used=repeats),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes and 2 repeats unless --repeats is given (a smoke run)")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per figure (default 5)")
    parser.add_argument("--json", default="bench-results.json")
    parser.add_argument("--skip-brian2", action="store_true")
    parser.add_argument("--sections", type=_sections, default=set(SECTIONS),
                        help="comma-separated sections to run: 1 (network writing, with 2), 3 (steady state), "
                             "4 (Brian2), 5 (memory); the machine limits always run")
    args = parser.parse_args()
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    json_path = Path(args.json)
    if not json_path.resolve().parent.is_dir():
        parser.error(f"--json: the folder of {args.json} does not exist")
    sections = args.sections
    repeats = args.repeats if args.repeats is not None else 2 if args.quick else 5
    sizes = ["1M"] if args.quick else list(cases.SYNAPSE_SIZES)
    report = dict(machine=machine_info(args, repeats), results=[])
    try:
        print("machine limits")
        limits = machine_limits(repeats)
        report["limits"] = limits
        for key, value in limits.items():
            print(f"  {key:<38} {value:10.2f}")

        results = report["results"]
        if "1" in sections:
            network_section(results, sizes, repeats, limits)
        if "3" in sections:
            report["paired"] = steady_state_section(results, repeats, report["limits"])
        if "5" in sections:
            report["memory"] = memory_section(args.quick)
        if "4" in sections and not args.skip_brian2:
            report["brian2"] = brian2_section(args.json, args.quick, limits)
    except BaseException as exc:  # keep what was measured: a 10-minute run is not thrown away
        report["incomplete"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        json_path.write_text(json.dumps(report, indent=1))
        print(f"\nJSON: {args.json}" + (" (incomplete)" if "incomplete" in report else ""))
    return 0


def network_section(results, sizes, repeats, limits):
    print("\n1-2. continuous-time network, writing phase (D = Dv = 64, dt = 1 ms, t_write = 100 ms)")
    print("  euler rows against a step-by-step kernel's bounds on this machine: one multiply-add per synapse-update\n"
          "  (FMA-bound) and one read + write of every synapse per dt (triad-bound); the core composes a window's\n"
          "  steps in closed form, so it may exceed both")
    for size in sizes:
        m, Dv = cases.SYNAPSE_SIZES[size]
        tokens = 4 if size == "64M" else 16
        for dtype in (np.float32, np.float64):
            for integrator in ("euler", "exact"):
                net = tripartite.NeuronAstrocyteNetwork(64, Dv, m, dtype=dtype, integrator=integrator)
                # bytes a call moves at least: the core makes one pass over the synapses (read and
                # written) and the weights (read) per segment of windows, plus each token's vectors;
                # a call of more than min_segment_windows reads the weights once more (its first
                # segment's maxima are taken in a pass of their own)
                passes = -(-tokens // _core.segment_windows(1, m, 64, Dv))
                weight_reads = passes + (tokens > _core.min_segment_windows)
                nbytes = (passes * 2 * Dv * m + weight_reads * 64 * m + tokens * 6 * m) * np.dtype(dtype).itemsize
                for threads in (1, 2):
                    if integrator == "euler":
                        against = against_update_bounds(limits, threads, np.dtype(dtype).itemsize, nbytes)
                    else:
                        against = against_triad(limits, threads, nbytes)
                    row(results, cases.network_write(size, integrator, dtype, threads, tokens, net=net), repeats,
                        against=against, size=size, threads=threads, dtype=np.dtype(dtype).name)
                del net


def steady_state_section(results, repeats, limits):
    print("\n3. steady-state attention at the paper's scale (L = 197, D = 64, m = 1e5, float32)")
    scaling = {}
    ms = lambda t: f"{t[0] * 1e3:.1f} ms [{t[1] * 1e3:.1f}, {t[2] * 1e3:.1f}]"  # noqa: E731
    for heads in (1, 12):
        ours = {threads: cases.steady_state(heads, threads) for threads in (1, 2)}
        for threads, case in ours.items():
            row(results, case, repeats, heads=heads, threads=threads, impl="ours")
        # 1 vs 2 threads, alternately, pair by pair (the machine drifts by more than the effect)
        pairs = max(repeats, 9) if heads == 1 else repeats
        one, two, ratio = paired(ours[1].run, ours[2].run, pairs)
        scaling[heads] = dict(pairs=pairs, seconds_1t=one, seconds_2t=two, ratio=ratio)
        print(f"  {heads}h ours 1t vs 2t alternately, {pairs} pairs: 1t {ms(one)}, 2t {ms(two)}, "
              f"2t speed-up {ratio[0]:.2f}x [{ratio[1]:.2f}, {ratio[2]:.2f}]", flush=True)
        row(results, cases.steady_state_peer(heads, "numpy"), repeats, heads=heads, impl="numpy")
        if heads == 1:
            # the four products alone on the machine's BLAS (no exponentials, no sums): what ours
            # would take if it were only those products, run by the library the field trusts
            products = cases.steady_state_peer(heads, "BLAS products alone")
            row(results, products, repeats, heads=heads, impl="blas-products")
            mine, blas, ratio = paired(ours[2].run, products.run, pairs, settle=0.5)
            scaling["ours_2t_vs_blas_products"] = dict(pairs=pairs, seconds_ours=mine, seconds_blas=blas, ratio=ratio)
            print(f"  ours 2t vs BLAS products alone alternately, {pairs} pairs: ours {ms(mine)}, BLAS {ms(blas)}, "
                  f"ours / BLAS {ratio[0]:.2f} [{ratio[1]:.2f}, {ratio[2]:.2f}]", flush=True)
            loop_case = cases.steady_state_peer(heads, "per-token loop")
            row(results, loop_case, max(1, repeats // 2), heads=heads, impl="loop")
            loop, mine, ratio = paired(loop_case.run, ours[2].run, pairs, settle=0.5)
            scaling["loop_vs_ours_2t"] = dict(pairs=pairs, seconds_loop=loop, seconds_ours=mine, ratio=ratio)
            print(f"  per-token loop vs ours 2t alternately, {pairs} pairs: loop {loop[0]:.3f} s [{loop[1]:.3f}, {loop[2]:.3f}], "
                  f"ours {ms(mine)}, loop / ours {ratio[0]:.1f}x [{ratio[1]:.1f}, {ratio[2]:.1f}]", flush=True)
            # causal (the streaming protocol): the same products plus each chunk's masked intra-chunk scores
            # (the four products counted, as for the bidirectional case: the intra-chunk scores are extra)
            row(results, cases.steady_state(heads, 2, causal=True), repeats, heads=heads, threads=2, impl="ours-causal",
                against=against_fma(limits, 2, cases.steady_state_flops(heads)))
            # the notebooks' arrays are NumPy's default float64: that loop, and ours in float64
            row(results, cases.steady_state_peer(heads, "per-token loop", dtype=np.float64), max(1, repeats // 2),
                heads=heads, impl="loop-f64")
            row(results, cases.steady_state(heads, 2, dtype=np.float64), repeats, heads=heads, threads=2, impl="ours-f64",
                against=against_fma(limits, 2, cases.steady_state_flops(heads), itemsize=8))
        else:
            # the paper's 12 heads against the loop too (issue 3 lists both peers at 1 and 12 heads): a
            # loop call takes ~15-20 s, so 3 pairs, and the loop's row is its timing in the pairs
            loop_case = cases.steady_state_peer(heads, "per-token loop")
            loop_pairs = 3
            loop, mine, ratio = paired(loop_case.run, ours[2].run, loop_pairs, settle=0.5)
            row(results, loop_case, loop_pairs, times=loop, heads=heads, impl="loop", timed="in the pairs")
            scaling["loop_vs_ours_2t_12h"] = dict(pairs=loop_pairs, seconds_loop=loop, seconds_ours=mine, ratio=ratio)
            print(f"  {heads}h per-token loop vs ours 2t alternately, {loop_pairs} pairs: loop {loop[0]:.3f} s "
                  f"[{loop[1]:.3f}, {loop[2]:.3f}], ours {ms(mine)}, loop / ours {ratio[0]:.1f}x [{ratio[1]:.1f}, {ratio[2]:.1f}]",
                  flush=True)
    by = {r["name"]: r["seconds_median"] for r in results}
    for heads in (1, 12):
        ours = by[f"steady state {heads}h ours 2t"]
        print(f"  {heads}h: ours / numpy = {ours / by[f'steady state {heads}h numpy']:.2f}", end="")
        if heads == 1:
            print(f", per-token loop / ours = {by['steady state 1h per-token loop'] / ours:.1f} (float32; "
                  f"{scaling['loop_vs_ours_2t']['ratio'][0]:.1f} paired), "
                  f"{by['steady state 1h per-token loop float64'] / by['steady state 1h ours 2t float64']:.1f} (float64), "
                  f"float64 loop / float32 ours = {by['steady state 1h per-token loop float64'] / ours:.1f}", end="")
        else:
            print(f", per-token loop / ours = {scaling['loop_vs_ours_2t_12h']['ratio'][0]:.1f} paired (float32)", end="")
        print(f", 2 threads vs 1: {scaling[heads]['ratio'][0]:.2f}x paired "
              f"(machine's FMA limit {limits['fma_2t_over_1t']:.2f}x)")
    scaling["against_limits"] = steady_state_limits(by, scaling, limits)
    return scaling


def steady_state_limits(by, scaling, limits):
    """The steady state's figures against the machine's limits of this run: ours and NumPy in
    GFLOP/s of the four products (cases.steady_state_flops) against the FMA limit and sgemm, the
    per-token loop in GB/s of the traffic it needs at least (cases.per_token_loop_bytes) against
    the triad, and what those limits allow the loop / ours ratio to be."""
    print("  against the machine's limits of this run (four products: "
          f"{cases.steady_state_flops(1) / 1e9:.2f} GFLOP per head; exponentials not counted):")
    triad = {t: limits[f"triad_GBps_{t}t"] * 1e9 for t in (1, 2)}
    sgemm = limits["sgemm_GFLOPs"]  # GFLOP/s, like flop_rate's rates
    out = {}
    for heads in (1, 12):
        flops = cases.steady_state_flops(heads)
        for threads in (1, 2):
            rate, of_fma = flop_rate(flops, by[f"steady state {heads}h ours {threads}t"], limits, threads)
            out[f"{heads}h_ours_{threads}t"] = dict(GFLOPs=rate, of_fma=of_fma)
            if threads == 2:
                out[f"{heads}h_ours_{threads}t"]["of_sgemm"] = rate / sgemm
            # sgemm ran on NumPy's default thread count (here 2): no 1-thread comparison
            print(f"    {heads}h ours {threads}t: {rate:6.1f} GFLOP/s = {of_fma:4.0%} of the FMA limit "
                  f"({threads} thread{'s' if threads > 1 else ''})" + (f", {rate / sgemm:4.0%} of sgemm" if threads == 2 else ""))
        rate = flops / by[f"steady state {heads}h numpy"] / 1e9
        out[f"{heads}h_numpy"] = dict(GFLOPs=rate, of_sgemm=rate / sgemm)
        print(f"    {heads}h numpy:   {rate:6.1f} GFLOP/s = {rate / sgemm:4.0%} of sgemm")
        name = f"steady state {heads}h BLAS products alone"
        if name in by:
            rate, of_fma = flop_rate(flops, by[name], limits, 2)
            out[f"{heads}h_blas_products"] = dict(GFLOPs=rate, of_fma=of_fma, of_sgemm=rate / sgemm)
            print(f"    {heads}h BLAS products alone: {rate:6.1f} GFLOP/s = {of_fma:4.0%} of the FMA limit, "
                  f"{rate / sgemm:4.0%} of sgemm (its products on these shapes, without exponentials or sums)")
    for dtype, name in ((np.float32, "steady state 1h per-token loop"), (np.float64, "steady state 1h per-token loop float64")):
        moved = cases.per_token_loop_bytes(1, itemsize=np.dtype(dtype).itemsize)
        bw = moved / by[name]
        out[f"loop_{np.dtype(dtype).name}"] = dict(GB=moved / 1e9, GBps=bw / 1e9, of_triad_1t=bw / triad[1], of_triad_2t=bw / triad[2])
        print(f"    per-token loop {np.dtype(dtype).name}: at least {moved / 1e9:.1f} GB moved, {bw / 1e9:.1f} GB/s = "
              f"{bw / triad[1]:.0%} of the 1-thread triad, {bw / triad[2]:.0%} of the 2-thread triad")
    # The loop is bound by memory, ours by the FMA units: what the machine's balance allows.
    flops, moved = cases.steady_state_flops(1), cases.per_token_loop_bytes(1)
    loop_pairs = scaling["loop_vs_ours_2t"]["seconds_loop"][0]
    at_fma = flops / (fma_limit(limits, 2) * 1e9)  # seconds
    ceiling = (moved / triad[2]) / at_fma
    needed = loop_pairs / 20
    out["ceiling_loop_at_triad_over_ours_at_fma"] = ceiling
    out["ours_2t_needed_for_20x_s"], out["ours_2t_needed_for_20x_of_fma"] = needed, at_fma / needed
    print(f"    the loop at the 2-thread triad ({moved / triad[2]:.2f} s) over ours at the 2-thread FMA limit "
          f"({at_fma * 1e3:.1f} ms): {ceiling:.1f}x; 20x the loop of the pairs ({loop_pairs:.3f} s) needs ours at "
          f"{needed * 1e3:.1f} ms, {at_fma / needed:.0%} of the FMA limit", end="")
    if "steady state 1h BLAS products alone" in by:
        blas = by["steady state 1h BLAS products alone"]
        out["ours_2t_needed_for_20x_over_blas_products"] = needed / blas
        print(f", {needed / blas:.2f}x the time of the BLAS products alone", end="")
    print()
    return out


def memory_section(quick):
    print("\n5. peak memory (RSS) against state + inputs + outputs")
    mem = []
    for label, code in (
        ("network 6.4M synapses", NETWORK_RSS.format(m=100000, heads=1)),
        ("network 100M synapses (16 heads x 98304 x 64)", NETWORK_RSS.format(m=98304, heads=16)),
        ("attention 12 heads m=1e5", ATTENTION_RSS.format(m=100000, heads=12)),
    ):
        if quick and "100M" in label:
            continue
        entry = dict(name=label, **peak_rss(code))
        mem.append(entry)
        print(f"  {label:<46} payload {entry['payload_bytes'] / 2**20:9.1f} MiB  peak RSS {entry['peak_rss_bytes'] / 2**20:9.1f} MiB  "
              f"ratio {entry['ratio']:.2f}; above the {entry['baseline_rss_bytes'] / 2**20:.1f} MiB interpreter baseline "
              f"{entry['ratio_above_baseline']:.2f}")
    return mem


def brian2_section(json_path, quick, limits):
    print("\n4. Brian2 C++ standalone, the same writing-phase equations")
    script = Path(__file__).parent / "brian2_writing.py"
    out = Path(json_path).with_suffix(".brian2.json")
    out.unlink(missing_ok=True)  # a file left by an earlier run must not pass for this run's figures
    sizes = "16384x64" if quick else "16384x64,100000x64"
    proc = subprocess.run([sys.executable, str(script), "--sizes", sizes, "--tokens", "10", "--threads", "1,2",
                           "--repeats", "3", "--out", str(out)], capture_output=True, text=True)
    if not out.exists():
        report = {"skipped": f"brian2 script failed: {proc.stderr[-500:]}"}
        print("  skipped:", report["skipped"])
        return report
    report = json.loads(out.read_text())
    for r in report.get("results", []):
        if "error" in r:  # a configuration that failed: say so, keep the others
            print(f"  brian2 m = {r.get('m', '?')} x Dv = {r.get('Dv', '?')} synapses, {r.get('threads', '?')}t: failed: {r['error']}")
            continue
        r["rate"] = rate = r["synapse_updates"] / r["run_s"]["median"]
        add_bound_multiples(r, limits, r["threads"], 8)
        print(f"  brian2 {r['synapses'] / 1e6:.2f}M synapses float64 {r['threads']}t: run {r['run_s']['median']:.3f} s "
              f"[{r['run_s']['min']:.3f}, {r['run_s']['max']:.3f}] = {rate:.3g} synapse-updates/s "
              f"({r['x_fma_bound']:.0%} of the FMA bound, {r['x_triad_bound']:.0%} of the triad bound); "
              f"code generation + compile {r['codegen_compile_s']:.1f} s, with the first run {r['total_first_s']:.1f} s")
    if "skipped" in report:
        print("  skipped:", report["skipped"])
    return report


if __name__ == "__main__":
    raise SystemExit(main())
