"""Where a computation runs: ``device="cpu"`` (the C++/OpenMP core) or ``"cuda"`` / ``"cuda:N"``
(the CUDA kernels of a build with ``TRIPARTITE_CUDA=ON``; see README, "GPU")."""

from __future__ import annotations

from typing import Any, List, Optional

from . import _core

BUILD_HINT = (
    "this tripartite was built without CUDA; rebuild it on a machine with the CUDA toolkit: "
    "TRIPARTITE_CUDA=ON pip install . (README, \"GPU\")"
)


def cuda_available() -> bool:
    """True when this build has the CUDA kernels and the driver sees at least one GPU."""
    return bool(_core.cuda_compiled) and _core.cuda_device_count() > 0


def cuda_devices() -> List[str]:
    """Names of the GPUs ``device="cuda:N"`` can use, by N (empty without CUDA)."""
    if not cuda_available():
        return []
    return [_core.cuda_device_name(i) for i in range(_core.cuda_device_count())]


def device_index(device: Any) -> Optional[int]:
    """None for ``"cpu"``; the GPU's index for ``"cuda"`` (0) or ``"cuda:N"``, checked against this
    build and the GPUs the driver sees."""
    if not isinstance(device, str):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    name = device.strip().lower()
    if name == "cpu":
        return None
    if name == "cuda":
        index = 0
    elif name.startswith("cuda:") and name[5:].isdigit():
        index = int(name[5:])
    else:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if not _core.cuda_compiled:
        raise ValueError(f"device={device!r}: {BUILD_HINT}")
    count = _core.cuda_device_count()
    if index >= count:
        raise ValueError(f"device={device!r}: the CUDA driver sees {count} GPU(s)"
                         + (f", so N must be below {count}" if count else " (no driver, or no GPU on this machine)"))
    return index


def check_device_memory(n_bytes: int, index: int, what: str) -> None:
    """MemoryError naming the sizes when ``n_bytes`` exceed the GPU's free memory."""
    free, total = _core.cuda_memory_info(index)
    if n_bytes > free:
        raise MemoryError(f"{what}: {n_bytes / 2**30:.2f} GiB of GPU memory needed on cuda:{index}, but only "
                          f"{free / 2**30:.2f} GiB of its {total / 2**30:.2f} GiB is free")
