"""How fast Ctrl-C stops a long run: python bench/interrupt_latency.py

Sends SIGINT to itself during a long write (100M synapses: 16 heads x 98304 hidden x 64 outputs,
and a 1M-synapse network) and prints the time from the signal to the SimulationInterrupted
exception, median and range over 5 tries each."""

import os
import signal
import statistics
import threading
import time

import numpy as np

import tripartite


def one(net, k, v, delay):
    sent = {}

    def fire():
        sent["t"] = time.perf_counter()
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(delay, fire)
    timer.start()
    try:
        net.write(k, v)
    except tripartite.SimulationInterrupted:
        return time.perf_counter() - sent["t"]
    finally:
        timer.cancel()
    raise RuntimeError("the run finished before the signal")


def main():
    rng = np.random.default_rng(0)
    for heads, m, L in ((1, 16384, 100000), (16, 98304, 2000)):
        net = tripartite.NeuronAstrocyteNetwork(64, 64, m, heads=heads)
        shape = (heads, L) if heads > 1 else (L,)
        k = (rng.standard_normal(shape + (64,)) * 0.35).astype(np.float32)
        v = rng.standard_normal(shape + (64,)).astype(np.float32)
        lat = [one(net, k, v, 0.5) for _ in range(5)]
        print(f"{net.n_synapses:>11,} synapses: Ctrl-C latency median {statistics.median(lat) * 1e3:.0f} ms "
              f"[{min(lat) * 1e3:.0f}, {max(lat) * 1e3:.0f}]")


if __name__ == "__main__":
    main()
