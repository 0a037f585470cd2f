"""What a monitor costs: python bench/monitor_cost.py [--tokens N] [--repeats R]

Writes N tokens (default 100) into a network of the paper's size (m = 10^5 hidden neurons, D = Dv
= 64: 6.4M synapses, float32, euler, 2 threads) without a monitor, with a calcium monitor, with a
monitor of the calcium and the neurons' and synapses' variables (calcium, hidden,
astrocyte_weights, synapses: the default indices, 10 neurons and one synapse), and with a monitor
of every variable (those and the outputs), then reads 20 queries with the neurons' monitor and
with the last one (its outputs need H h and H u every read), and streams 20 tokens with it. Prints the median and range of R
calls (default 3) of each, a fresh network per call, and each monitored time over the
unmonitored one. Monitored runs go in the core's segments of up to 32 windows as unmonitored ones
do (a monitor of the outputs makes each read take two more readouts in the pass)."""

import argparse
import statistics
import time

import numpy as np

import tripartite


def timed(make, run, repeats):
    times = []
    for _ in range(repeats):
        net = make()
        t0 = time.perf_counter()
        run(net)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), max(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=100_000)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    k = (rng.standard_normal((args.tokens, 64)) * 64**-0.25).astype(np.float32)
    v = rng.standard_normal((args.tokens, 64)).astype(np.float32)
    q = k[:20]
    neurons = ("calcium", "hidden", "astrocyte_weights", "synapses")
    every = neurons + ("outputs",)

    def network(variables):
        def make():
            net = tripartite.NeuronAstrocyteNetwork(64, 64, args.hidden, integrator="euler", num_threads=2)
            if variables:
                net.monitor(variables)
            return net
        return make

    print(f"m = {args.hidden}, D = Dv = 64 ({64 * args.hidden / 1e6:.1f}M synapses), float32, euler, 2 threads; "
          f"{args.tokens} tokens written, median [min, max] of {args.repeats} calls")
    base = None
    for label, variables in (("no monitor", None), ("calcium", ("calcium",)), ("neurons", neurons),
                             ("every variable", every)):
        med, lo, hi = timed(network(variables), lambda net: net.write(k, v), args.repeats)
        base = base or med
        print(f"  write, {label:<15} {med:8.3f} s  [{lo:.3f}, {hi:.3f}]  {med / base:6.1f}x", flush=True)

    def written(variables):
        def make():
            net = network(variables)()
            net.write(k[:4], v[:4])
            return net
        return make

    base = None
    for label, variables in (("no monitor", None), ("neurons", neurons), ("every variable", every)):
        med, lo, hi = timed(written(variables), lambda net: net.read(q), args.repeats)
        base = base or med
        print(f"  read 20, {label:<13} {med:8.3f} s  [{lo:.3f}, {hi:.3f}]  {med / base:6.1f}x", flush=True)

    base = None
    for label, variables in (("no monitor", None), ("every variable", every)):
        med, lo, hi = timed(written(variables), lambda net: net.stream(q, k[4:24], v[4:24]), args.repeats)
        base = base or med
        print(f"  stream 20, {label:<11} {med:8.3f} s  [{lo:.3f}, {hi:.3f}]  {med / base:6.1f}x", flush=True)


if __name__ == "__main__":
    main()
