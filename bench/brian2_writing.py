#!/usr/bin/env python3
"""Brian2 (C++ standalone) peer benchmark of the tripartite network's *writing phase*.

One head, time in ms. While token tau is written (window t_write = 100 ms) with constant hidden
input u = phi(k_tau) (lognormal here) and clamped output vector v (normal here), new u, v per token:

    tau_hidden dh_r/dt = -h_r + u_r                          (tau_hidden = 10 ms)
    dH_dr/dt = (eta/t_write) v_d h_r - leak H_dr             (Dv x m synapses, all pairs)
    dg_r/dt  = (eta/t_write) h_r - leak g_r
    tau_astro da/dt = -a + sum_r g_r h_r                      (tau_astro = 100 ms)

explicit Euler, dt = 1 ms, L tokens one after another, all variables advanced simultaneously
from the values at step n (the schedule below is ordered so that Brian2 does exactly that).

Usage (see --help):  python3 brian2_writing.py --sizes 16384x64,100000x64 --tokens 10 \
                         --threads 1,2 --repeats 3 --out result.json

If the running interpreter cannot import a working Brian2, the script creates a virtual
environment (default ~/.cache/tripartite-bench/brian2-venv, override with
TRIPARTITE_BRIAN2_VENV) with pinned Brian2/NumPy and re-executes itself there. If Brian2
cannot be installed, built or run, it prints {"skipped": "<reason>"} and exits 0.
Only stdlib + numpy + brian2 are used.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

BENCH_NAME = "tripartite-writing-brian2"
DEFAULT_VENV = os.path.join(os.path.expanduser("~"), ".cache", "tripartite-bench", "brian2-venv")
# Brian2 2.9.0 (newest on PyPI at the time of writing) declares numpy>=1.23.5 but fails to import
# with numpy 2.4 (ndarray.ptp was removed): pin numpy below 2.4. Override with TRIPARTITE_BRIAN2_PIP.
DEFAULT_PIP_SPECS = ["brian2==2.9.0", "numpy>=1.23.5,<2.4"]
REEXEC_FLAG = "TRIPARTITE_BRIAN2_REEXEC"

T_WRITE_MS = 100.0
DT_MS = 1.0
TAU_H_MS = 10.0
TAU_A_MS = 100.0
QUIET_CORES = 0.3   # a run counts as "quiet" if other processes used less than this many cores


# ----------------------------------------------------------------------------------------------
# output helpers
# ----------------------------------------------------------------------------------------------
def emit(obj, out_path):
    line = json.dumps(obj, sort_keys=True)
    print(line, flush=True)
    if out_path:
        d = os.path.dirname(os.path.abspath(out_path))
        os.makedirs(d, exist_ok=True)
        with open(out_path, "w") as f:
            f.write(line + "\n")


def skip(reason, out_path, **extra):
    obj = {"benchmark": BENCH_NAME, "skipped": reason}
    obj.update(extra)
    emit(obj, out_path)
    sys.exit(0)


# ----------------------------------------------------------------------------------------------
# environment bootstrap
# ----------------------------------------------------------------------------------------------
def brian2_importable(python=None):
    """(ok, reason) whether `python` (default: this interpreter) imports numpy + brian2."""
    code = "import numpy, brian2; print(brian2.__version__, numpy.__version__)"
    if python is None:
        try:
            import numpy  # noqa: F401
            import brian2  # noqa: F401
            return True, ""
        except Exception as e:  # ImportError, or AttributeError with numpy>=2.4
            return False, f"{type(e).__name__}: {e}"
    try:
        r = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=300)
    except Exception as e:
        return False, f"{type(e).__name__}: {e}"
    if r.returncode != 0:
        return False, (r.stderr.strip().splitlines() or ["import failed"])[-1]
    return True, ""


def ensure_brian2(out_path):
    ok, why = brian2_importable()
    if ok:
        return
    if os.environ.get(REEXEC_FLAG) == "1":
        skip(f"brian2 not importable even inside the venv: {why}", out_path)
    venv = os.environ.get("TRIPARTITE_BRIAN2_VENV", DEFAULT_VENV)
    py = os.path.join(venv, "bin", "python")
    ok, why2 = (brian2_importable(py) if os.path.exists(py) else (False, "no venv yet"))
    if not ok:
        specs = os.environ.get("TRIPARTITE_BRIAN2_PIP", " ".join(DEFAULT_PIP_SPECS)).split()
        print(f"[brian2_writing] current interpreter cannot use brian2 ({why}); "
              f"setting up venv {venv} with: pip install {' '.join(specs)}", file=sys.stderr, flush=True)
        try:
            if not os.path.exists(py):
                os.makedirs(os.path.dirname(venv), exist_ok=True)
                subprocess.run([sys.executable, "-m", "venv", venv], check=True,
                               stdout=sys.stderr, stderr=sys.stderr, timeout=600)
            subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check"] + specs,
                           check=True, stdout=sys.stderr, stderr=sys.stderr, timeout=1800)
        except Exception as e:
            skip(f"could not create venv / pip install brian2: {type(e).__name__}: {e}", out_path)
        ok, why2 = brian2_importable(py)
        if not ok:
            skip(f"brian2 installed in {venv} but not importable: {why2}", out_path)
    env = dict(os.environ)
    env[REEXEC_FLAG] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(py, [py, os.path.abspath(__file__)] + sys.argv[1:], env)


# ----------------------------------------------------------------------------------------------
# network (Brian2, C++ standalone)
# ----------------------------------------------------------------------------------------------
def make_inputs(m, Dv, L, seed):
    import numpy as np
    rng = np.random.default_rng(seed)
    U = rng.lognormal(mean=0.0, sigma=0.5, size=(L, m))  # u_r = phi_r(k_tau) > 0, new per token
    V = rng.standard_normal(size=(L, Dv))                 # clamped value vector, new per token
    return U, V


def build_and_compile(m, Dv, L, threads, U, V, eta, leak, project_dir, monitor=False):
    """Set up the standalone project, generate code and compile it. Returns (objects, seconds)."""
    import brian2 as b2
    from brian2 import ms, NeuronGroup, Synapses, TimedArray, StateMonitor, Network

    t0 = time.perf_counter()
    b2.prefs.logging.file_log = False
    b2.prefs.logging.console_log_level = "WARNING"
    b2.set_device("cpp_standalone", directory=project_dir, build_on_run=False)
    # threads == 1 -> plain serial code (no OpenMP); threads > 1 -> OpenMP with that many threads
    b2.prefs.devices.cpp_standalone.openmp_threads = threads if threads > 1 else 0
    b2.prefs.devices.cpp_standalone.extra_make_args_unix = ["-j2"]
    b2.defaultclock.dt = DT_MS * ms

    t_write = T_WRITE_MS * ms
    namespace = {
        "tau_h": TAU_H_MS * ms,
        "tau_a": TAU_A_MS * ms,
        "eta_w": eta / t_write,        # eta / t_write   (1/time)
        "leak": leak / ms,             # leak given in 1/ms
        "Utab": TimedArray(U, dt=t_write),   # (L, m): row = token
        "Vtab": TimedArray(V, dt=t_write),   # (L, Dv)
    }
    # Schedule within the 'groups' slot (sorted by `order`):
    #   -1: synapse H update (reads h_pre at step n) and the summed variable S = sum g h (step n)
    #    0: astrocyte a update (uses S of step n)
    #    1: hidden h, g update
    # 'start' slot: token change (u, v read from the TimedArrays every t_write).
    hidden = NeuronGroup(m, """dh/dt = (-h + u) / tau_h : 1
                               dg/dt = eta_w * h - leak * g : 1
                               u : 1""",
                         method="euler", order=1, name="hidden", namespace=namespace)
    hidden.run_regularly("u = Utab(t, i)", dt=t_write, when="start", name="hidden_token")
    output = NeuronGroup(Dv, "v : 1", name="output", namespace=namespace)
    output.run_regularly("v = Vtab(t, i)", dt=t_write, when="start", name="output_token")
    syn = Synapses(hidden, output, "dH/dt = eta_w * v_post * h_pre - leak * H : 1 (clock-driven)",
                   method="euler", order=-1, name="syn", namespace=namespace)
    syn.connect()  # all (hidden r, output d) pairs
    astro = NeuronGroup(1, """da/dt = (-a + S) / tau_a : 1
                              S : 1""",
                        method="euler", order=0, name="astro", namespace=namespace)
    gsum = Synapses(hidden, astro, "S_post = g_pre * h_pre : 1 (summed)", name="gsum",
                    namespace=namespace)
    gsum.connect()
    objs = dict(hidden=hidden, output=output, syn=syn, astro=astro, gsum=gsum)
    if monitor:
        objs["mon_a"] = StateMonitor(astro, "a", record=0, name="mon_a")  # 'start': a at step n

    # wall clock around network.run only (Brian2's own figure uses std::clock without OpenMP)
    b2.device.insert_code("before_network_run",
                          "struct timespec _bench_t0; clock_gettime(CLOCK_MONOTONIC, &_bench_t0);")
    b2.device.insert_code("after_network_run",
                          "struct timespec _bench_t1; clock_gettime(CLOCK_MONOTONIC, &_bench_t1);\n"
                          "std::cout << \"BENCH_WALL_NS \" << ((long long)(_bench_t1.tv_sec - _bench_t0.tv_sec)"
                          " * 1000000000LL + (long long)(_bench_t1.tv_nsec - _bench_t0.tv_nsec)) << std::endl;")
    net = Network(*objs.values(), name="writing")  # explicit: no magic-network frame lookup
    net.run(L * t_write)
    b2.device.build(directory=project_dir, compile=True, run=False, clean=True, with_output=False)
    return objs, time.perf_counter() - t0


def cpu_busy_seconds():
    """Machine-wide busy CPU seconds (all cores) from /proc/stat, or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / hz


def run_binary():
    """Run the compiled project once.

    Returns (wall of network.run s, Brian2's run time s, binary process s, other_load_cores), where
    other_load_cores = CPU cores used by *other* processes on the machine meanwhile (busy time from
    /proc/stat minus the binary's own CPU time, over the binary's wall time): a contention indicator.
    """
    import resource
    import brian2 as b2
    dev = b2.device
    busy0, ru0 = cpu_busy_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    dev.run(directory=dev.project_dir, with_output=False)
    wall = time.perf_counter() - t0
    busy1, ru1 = cpu_busy_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN)
    other = None
    if busy0 is not None and busy1 is not None and wall > 0:
        own = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        other = max(0.0, (busy1 - busy0) - own) / wall
    with open(os.path.join(dev.results_dir, "stdout.txt")) as f:
        txt = f.read()
    ns = [int(l.split()[1]) for l in txt.splitlines() if l.startswith("BENCH_WALL_NS ")]
    if not ns:
        raise RuntimeError(f"no BENCH_WALL_NS line in standalone stdout: {txt[-500:]!r}")
    return ns[-1] * 1e-9, float(dev._last_run_time), float(dev.timers["run_binary"]), other


# ----------------------------------------------------------------------------------------------
# NumPy reference and correctness check
# ----------------------------------------------------------------------------------------------
def numpy_reference(U, V, eta, leak):
    import numpy as np
    L, m = U.shape
    Dv = V.shape[1]
    steps = int(round(T_WRITE_MS / DT_MS))
    dt, e = DT_MS, eta / T_WRITE_MS
    h, g, a = np.zeros(m), np.zeros(m), 0.0
    H = np.zeros((Dv, m))
    a_traj = []
    for k in range(L):
        u, v = U[k], V[k]
        for _ in range(steps):
            a_traj.append(a)
            H_new = H + dt * (e * np.outer(v, h) - leak * H)
            g_new = g + dt * (e * h - leak * g)
            a_new = a + dt * (-a + float(np.dot(g, h))) / TAU_A_MS
            h_new = h + dt * (-h + u) / TAU_H_MS
            H, g, a, h = H_new, g_new, a_new, h_new
    return dict(H=H, g=g, a=np.array([a]), h=h, a_traj=np.array(a_traj))


def rel_errors(x, ref):
    import numpy as np
    x, ref = np.asarray(x, float).ravel(), np.asarray(ref, float).ravel()
    diff = np.abs(x - ref)
    scale = float(np.max(np.abs(ref))) or 1.0
    nz = np.abs(ref) > 0
    elem = float(np.max(diff[nz] / np.abs(ref[nz]))) if nz.any() else float(np.max(diff))
    return {"max_abs": float(np.max(diff)), "max_rel_normwise": float(np.max(diff)) / scale,
            "max_rel_elementwise": elem}


def worker_check(cfg):
    import numpy as np
    m, Dv, L = cfg["m"], cfg["Dv"], cfg["tokens"]
    U, V = make_inputs(m, Dv, L, cfg["seed"])
    objs, t_cc = build_and_compile(m, Dv, L, cfg["threads"], U, V, cfg["eta"], cfg["leak"],
                                   cfg["project_dir"], monitor=True)
    run_binary()
    syn = objs["syn"]
    H = np.zeros((Dv, m))
    H[np.asarray(syn.j[:]), np.asarray(syn.i[:])] = np.asarray(syn.H[:])
    got = dict(H=H, g=np.asarray(objs["hidden"].g[:]), h=np.asarray(objs["hidden"].h[:]),
               a=np.asarray(objs["astro"].a[:]), a_traj=np.asarray(objs["mon_a"].a[0]))
    ref = numpy_reference(U, V, cfg["eta"], cfg["leak"])
    errs = {k: rel_errors(got[k], ref[k]) for k in ("H", "g", "a", "h", "a_traj")}
    worst = max(max(e["max_rel_normwise"], e["max_rel_elementwise"]) for e in errs.values())
    return {"kind": "check", "m": m, "Dv": Dv, "tokens": L, "threads": cfg["threads"],
            "eta": cfg["eta"], "leak_per_ms": cfg["leak"], "synapses": int(len(syn.H[:])),
            "steps": len(got["a_traj"]), "errors": errs, "max_rel_error": worst,
            "passed": bool(worst < 1e-12), "codegen_compile_s": t_cc,
            "ranges": {"H_max": float(np.abs(ref["H"]).max()), "g_max": float(ref["g"].max()),
                       "a_final": float(ref["a"][0])}}


def stats(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "all": xs}


def worker_bench(cfg):
    m, Dv, L, threads, reps = cfg["m"], cfg["Dv"], cfg["tokens"], cfg["threads"], cfg["repeats"]
    U, V = make_inputs(m, Dv, L, cfg["seed"])
    t_py0 = time.perf_counter()
    objs, t_cc = build_and_compile(m, Dv, L, threads, U, V, cfg["eta"], cfg["leak"], cfg["project_dir"])
    walls, brians, procs, others, befores = [], [], [], [], []
    for _ in range(reps):
        befores.append(wait_for_idle(cfg.get("wait_idle", 0.0)))
        w, b, p, o = run_binary()
        walls.append(w); brians.append(b); procs.append(p); others.append(o)
    # runs during which other processes used < 0.3 cores on this (possibly shared) machine
    quiet = [w for w, o in zip(walls, others) if o is not None and o < QUIET_CORES]
    n_syn = Dv * m
    steps = int(round(T_WRITE_MS / DT_MS)) * L
    updates = n_syn * steps
    ups = [updates / w for w in walls]
    return {"kind": "bench", "m": m, "Dv": Dv, "synapses": n_syn, "tokens": L,
            "steps": steps, "synapse_updates": updates, "threads": threads,
            "openmp_threads_pref": threads if threads > 1 else 0, "repeats": reps,
            "eta": cfg["eta"], "leak_per_ms": cfg["leak"],
            "run_s": stats(walls),              # wall clock around network.run (clock_gettime)
            "brian2_run_s": stats(brians),      # Brian2's own last_run_time
            "process_s": stats(procs),          # whole binary: load arrays, connect, run, write results
            "codegen_compile_s": t_cc,          # Python network setup + code generation + make
            "total_first_s": t_cc + procs[0],   # codegen + compile + first full binary run
            "updates_per_s": stats(ups),
            "other_load_cores": others,         # CPU used by other processes during each run
            "other_load_before_run": befores,   # same, sampled for 2 s just before each run
            "quiet_runs": len(quiet),
            "run_s_quiet": stats(quiet) if quiet else None,
            "updates_per_s_quiet": stats([updates / w for w in quiet]) if quiet else None,
            "loadavg_after": list(os.getloadavg()),
            "ns_per_synapse_update": statistics.median(walls) / updates * 1e9}


def worker_main(cfg_json, result_path):
    cfg = json.loads(cfg_json)
    try:
        res = worker_check(cfg) if cfg["kind"] == "check" else worker_bench(cfg)
    except Exception as e:
        res = {"kind": cfg["kind"], "m": cfg["m"], "Dv": cfg["Dv"], "threads": cfg["threads"],
               "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}
    with open(result_path, "w") as f:
        json.dump(res, f)


# ----------------------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------------------
def other_load(seconds=2.0):
    """CPU cores busy (machine-wide) over `seconds` while this driver sleeps, or None."""
    b0 = cpu_busy_seconds()
    time.sleep(seconds)
    b1 = cpu_busy_seconds()
    return None if b0 is None or b1 is None else (b1 - b0) / seconds


def wait_for_idle(max_wait, threshold=None):
    """Wait (up to max_wait s) until other processes use < threshold cores; return last sample."""
    threshold = QUIET_CORES if threshold is None else threshold
    t0 = time.perf_counter()
    load = other_load()
    while load is not None and load >= threshold and time.perf_counter() - t0 < max_wait:
        load = other_load(5.0)
    return load


def run_worker(cfg, timeout, wait_idle=0.0):
    load_before = wait_for_idle(wait_idle)
    fd, res_path = tempfile.mkstemp(prefix="b2w_", suffix=".json")
    os.close(fd)
    cmd = [sys.executable, os.path.abspath(__file__), "--_worker", json.dumps(cfg), "--_result", res_path]
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        rc, tail = r.returncode, (r.stdout + r.stderr)[-2000:]
    except subprocess.TimeoutExpired:
        rc, tail = "timeout", f"worker exceeded {timeout} s"
    try:
        with open(res_path) as f:
            res = json.load(f)
    except Exception:
        res = {"kind": cfg["kind"], "m": cfg["m"], "Dv": cfg["Dv"], "threads": cfg["threads"],
               "error": f"worker failed (rc={rc})", "output_tail": tail}
    finally:
        os.unlink(res_path)
    res["worker_wall_s"] = time.perf_counter() - t0
    res["other_load_before"] = load_before
    return res


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def compiler_version():
    try:
        r = subprocess.run(["g++", "--version"], capture_output=True, text=True, timeout=30)
        return r.stdout.splitlines()[0]
    except Exception:
        return None


def parse_sizes(s):
    out = []
    for part in s.split(","):
        part = part.strip().lower()
        if part:
            m, dv = part.split("x")
            out.append((int(m), int(dv)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="16384x64,100000x64",
                    help="comma list of MxDV (hidden neurons x output neurons); synapses = M*DV")
    ap.add_argument("--tokens", type=int, default=10, help="L, tokens written one after another")
    ap.add_argument("--threads", default="1,2", help="comma list; 1 = serial code, >1 = OpenMP")
    ap.add_argument("--repeats", type=int, default=3, help="binary runs per configuration (>=3)")
    ap.add_argument("--out", default=None, help="write the JSON line here too")
    ap.add_argument("--eta", type=float, default=1.0)
    ap.add_argument("--leak", type=float, default=0.0, help="leak rate in 1/ms (benchmark runs)")
    ap.add_argument("--check-leak", type=float, default=1e-3, help="leak (1/ms) in the correctness check")
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--no-check", action="store_true", help="skip the tiny-network correctness check")
    ap.add_argument("--check-only", action="store_true", help="only run the correctness check")
    ap.add_argument("--workdir", default=None,
                    help="where the standalone projects are generated (default: a temp dir, removed)")
    ap.add_argument("--timeout", type=float, default=1200, help="seconds per configuration")
    ap.add_argument("--wait-idle", type=float, default=0.0,
                    help="before each configuration and each timed run wait up to this many seconds for "
                         "other processes to use < 0.3 cores (the machine may be shared); the load is recorded anyway")
    ap.add_argument("--_worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_result", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args._worker is not None:
        worker_main(args._worker, args._result)
        return

    ensure_brian2(args.out)  # may re-exec inside the venv, or print {"skipped": ...} and exit 0

    import numpy
    import brian2
    if shutil.which("g++") is None and shutil.which("c++") is None:
        skip("no C++ compiler (g++) found for Brian2 standalone", args.out,
             brian2=brian2.__version__, numpy=numpy.__version__)

    try:
        sizes = parse_sizes(args.sizes)
        threads = [int(t) for t in args.threads.split(",") if t.strip()]
    except ValueError as e:
        skip(f"bad --sizes/--threads: {e}", args.out)
    keep = args.workdir is not None
    workdir = os.path.abspath(args.workdir) if keep else tempfile.mkdtemp(prefix="brian2_writing_")
    os.makedirs(workdir, exist_ok=True)

    summary = {"benchmark": BENCH_NAME, "brian2": brian2.__version__, "numpy": numpy.__version__,
               "python": platform.python_version(), "python_executable": sys.executable,
               "compiler": compiler_version(),
               "compile_flags": list(brian2.prefs.codegen.cpp.extra_compile_args_gcc),
               "cpu": cpu_model(), "nproc": os.cpu_count(),
               "dt_ms": DT_MS, "t_write_ms": T_WRITE_MS, "tau_hidden_ms": TAU_H_MS,
               "tau_astro_ms": TAU_A_MS, "tokens": args.tokens, "repeats": args.repeats,
               "integrator": "euler", "dtype": "float64", "seed": args.seed,
               "updates_per_s_definition": "Dv*m*(t_write/dt)*L / run_s (run_s = wall of network.run)",
               "check": None, "results": []}
    base = {"eta": args.eta, "seed": args.seed, "wait_idle": args.wait_idle}
    try:
        if not args.no_check:
            cfg = dict(base, kind="check", m=50, Dv=3, tokens=2, threads=1, leak=args.check_leak,
                       project_dir=os.path.join(workdir, "check"))
            summary["check"] = run_worker(cfg, args.timeout)
            print(f"[brian2_writing] check: {json.dumps(summary['check'])}", file=sys.stderr, flush=True)
            if "error" in summary["check"] and summary["check"].get("error"):
                summary["skipped"] = "brian2 standalone build/run failed in the correctness check"
        if not args.check_only and not summary.get("skipped"):
            for (m, dv) in sizes:
                for th in threads:
                    cfg = dict(base, kind="bench", m=m, Dv=dv, tokens=args.tokens, threads=th,
                               repeats=max(1, args.repeats), leak=args.leak,
                               project_dir=os.path.join(workdir, f"m{m}_dv{dv}_t{th}"))
                    res = run_worker(cfg, args.timeout + (cfg["repeats"] + 1) * args.wait_idle, args.wait_idle)
                    summary["results"].append(res)
                    if not keep:  # results of a 6.4M-synapse project take ~150 MB
                        shutil.rmtree(cfg["project_dir"], ignore_errors=True)
                    print(f"[brian2_writing] {json.dumps(res)}", file=sys.stderr, flush=True)
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    emit(summary, args.out)


if __name__ == "__main__":
    main()
