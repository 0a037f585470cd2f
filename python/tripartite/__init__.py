"""tripartite: neuron-astrocyte networks that compute transformer attention.

Implements Kozachkov, Kastanenka & Krotov, "Building transformers from neurons and astrocytes"
(PNAS 2023): hidden neurons with random weights, tripartite synapses written by Hebbian
plasticity, and one astrocyte per head whose calcium divides every synapse by the softmax
denominator.

- :func:`attention`: the paper's steady state, a drop-in attention function (``device="cuda"``
  with a build that has the CUDA kernels: :func:`cuda_available`).
- :class:`NeuronAstrocyteNetwork`: the network in continuous time.
- :mod:`tripartite.reference`: slow NumPy references of both.
"""

from ._cpu import check_build_cpu

check_build_cpu()  # before the compiled core runs any code: see _cpu.py

from . import reference  # noqa: E402
from ._core import openmp_enabled  # noqa: E402
from ._cuda import cuda_available, cuda_devices  # noqa: E402
from .attention import attention  # noqa: E402
from .network import NeuronAstrocyteNetwork, SimulationInterrupted  # noqa: E402
from .weights import draw_hidden_weights  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "attention",
    "NeuronAstrocyteNetwork",
    "SimulationInterrupted",
    "draw_hidden_weights",
    "reference",
    "openmp_enabled",
    "cuda_available",
    "cuda_devices",
    "__version__",
]
