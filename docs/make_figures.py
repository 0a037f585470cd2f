"""Regenerates two of the README's pictures, docs/demo.png and docs/monitor.png: python docs/make_figures.py

The MiniLM figures (docs/minilm_figure.png, docs/minilm_summary.png) are the figure.png and summary.png that
``tripartite minilm`` writes into its --out folder."""

import subprocess
import sys
from pathlib import Path

import numpy as np

import tripartite
from tripartite.plots import calcium_trace, figure, synapse_traces

here = Path(__file__).parent
subprocess.run([sys.executable, "-m", "tripartite", "demo", "--out", str(here / "demo.png")], check=True)

rng = np.random.default_rng(0)
D = 16
q, k = (rng.standard_normal((2, 6, D)) * D**-0.25 for _ in range(2))
v = rng.standard_normal((6, 4))
net = tripartite.NeuronAstrocyteNetwork(D, 4, 4096, t_read=300.0)
mon = net.monitor(("calcium", "synapses"), synapses=[(0, 0), (1, 1), (2, 2)], every=2)
net.write(k[0], v)
net.read(q[0][:4])
fig, axes = figure(2, width=5.5, height=3.5)
calcium_trace(axes[0], mon)
axes[0].set_title("astrocyte calcium: 6 tokens written (shaded), 4 queries read")
synapse_traces(axes[1], mon)
axes[1].set_title("three tripartite synapses")
fig.savefig(here / "monitor.png", dpi=110)
print("wrote", here / "demo.png", "and", here / "monitor.png")
