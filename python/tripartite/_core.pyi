"""Type stubs of the compiled core (private; use the tripartite package)."""

from typing import Callable, Dict, Optional, Sequence, Tuple, overload

import numpy as np
import numpy.typing as npt

block_size: int
attention_block_size: int
chunk_size: int
blocks_per_task: int
single_thread_work: float
max_segment_windows: int
min_segment_windows: int
def segment_windows(heads: int, m: int, d_key: int, d_value: int) -> int: ...
num_scalars: int

def attention_float32(
    W: npt.NDArray[np.float32], bias: Optional[npt.NDArray[np.float32]], q: npt.NDArray[np.float32],
    k: npt.NDArray[np.float32], v: npt.NDArray[np.float32], input_scale: float, causal: bool, num_threads: int,
    partial_budget: int = ..., w_index: Optional[npt.NDArray[np.int64]] = ...,
    key_mask: Optional[npt.NDArray[np.uint8]] = ...,
) -> Tuple[npt.NDArray[np.float32], npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
    # (y, log a, log of a bound on what underflow may have taken from a)
def attention_float64(
    W: npt.NDArray[np.float64], bias: Optional[npt.NDArray[np.float64]], q: npt.NDArray[np.float64],
    k: npt.NDArray[np.float64], v: npt.NDArray[np.float64], input_scale: float, causal: bool, num_threads: int,
    partial_budget: int = ..., w_index: Optional[npt.NDArray[np.int64]] = ...,
    key_mask: Optional[npt.NDArray[np.uint8]] = ...,
) -> Tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
    # (y, log a, log of a bound on what underflow may have taken from a)
def run_network_float32(
    W: np.ndarray, bias: Optional[np.ndarray], H: np.ndarray, g: np.ndarray, h: np.ndarray, scalars: np.ndarray,
    keys: np.ndarray, values: np.ndarray, queries: np.ndarray, is_write: np.ndarray, index: np.ndarray,
    params: dict, integrator: str, write_steps: int, read_steps: int, num_threads: int,
    progress: Optional[Callable[[int], None]], stop_multiple: int, window_sums: Optional[np.ndarray] = ...,
    window_reads: Optional[np.ndarray] = ...,
) -> Tuple[np.ndarray, np.ndarray, int, bool, int]: ...  # y, log a, windows done, interrupted, reads underflowed
def run_network_float64(
    W: np.ndarray, bias: Optional[np.ndarray], H: np.ndarray, g: np.ndarray, h: np.ndarray, scalars: np.ndarray,
    keys: np.ndarray, values: np.ndarray, queries: np.ndarray, is_write: np.ndarray, index: np.ndarray,
    params: dict, integrator: str, write_steps: int, read_steps: int, num_threads: int,
    progress: Optional[Callable[[int], None]], stop_multiple: int, window_sums: Optional[np.ndarray] = ...,
    window_reads: Optional[np.ndarray] = ...,
) -> Tuple[np.ndarray, np.ndarray, int, bool, int]: ...  # y, log a, windows done, interrupted, reads underflowed
def window_map(
    integrator: str, duration: float, steps: int, rate_h: float, rate_a: float, e: float, leak: float
) -> Tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
def window_trajectory(
    integrator: str, duration: float, steps: int, rate_h: float, rate_a: float, e: float, leak: float,
    samples: Sequence[int],
) -> Tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
def monitor_window_float32(
    W: npt.NDArray[np.float32], x: Optional[npt.NDArray[np.float64]], c: float, bias: Optional[npt.NDArray[np.float32]],
    h: npt.NDArray[np.float32], g: npt.NDArray[np.float32], e_h: float, e_g: float,
    H: Optional[npt.NDArray[np.float32]], num_threads: int,
) -> Tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], Optional[npt.NDArray[np.float64]], Optional[npt.NDArray[np.float64]]]: ...
def monitor_window_float64(
    W: npt.NDArray[np.float64], x: Optional[npt.NDArray[np.float64]], c: float, bias: Optional[npt.NDArray[np.float64]],
    h: npt.NDArray[np.float64], g: npt.NDArray[np.float64], e_h: float, e_g: float,
    H: Optional[npt.NDArray[np.float64]], num_threads: int,
) -> Tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], Optional[npt.NDArray[np.float64]], Optional[npt.NDArray[np.float64]]]: ...
def scan_values(array: npt.NDArray[np.floating], num_threads: int = ...) -> Tuple[int, float]: ...
@overload
def shifted_exp2(x: npt.NDArray[np.float64], shift: float) -> npt.NDArray[np.float64]: ...
@overload
def shifted_exp2(x: npt.ArrayLike, shift: float) -> npt.NDArray[np.float32]: ...
@overload
def pack_panels(W: npt.NDArray[np.float64], r0: int, full: int, reference: bool = ...) -> npt.NDArray[np.float64]: ...
@overload
def pack_panels(W: npt.ArrayLike, r0: int, full: int, reference: bool = ...) -> npt.NDArray[np.float32]: ...
def fma_throughput(num_threads: int, iterations: int) -> float: ...
def triad(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32], c: npt.NDArray[np.float32], s: float, num_threads: int) -> None: ...
def openmp_enabled() -> bool: ...
def max_threads() -> int: ...

# The steady state on a GPU (cpp/cuda/attention.cu): the attention_cuda_* functions and the
# cuda_device_* queries exist only in a build with TRIPARTITE_CUDA=ON (cuda_compiled); the
# *_emulated ones, the same kernels on the CPU emulation for the tests, in every build.
# Each returns (y, log a, log of the underflow bound, times): times in ms, "kernels_gpu" (CUDA events
# around the kernels) and the host's wall-clock phases "scaling", "allocation", "upload", "kernels",
# "download" and the whole "call" (which also holds the device buffers' release).
cuda_compiled: bool
cuda_block_size: int
cuda_fold_run: int
def attention_cuda_bytes(
    itemsize: int, heads: int, n_weights: int, m: int, D: int, Lq: int, Lk: int, Dv: int, bias: bool, w_index: bool,
    key_mask: bool, partial_budget: int = ...,
) -> int: ...
def attention_cuda_float32(
    W: npt.NDArray[np.float32], bias: Optional[npt.NDArray[np.float32]], q: npt.NDArray[np.float32],
    k: npt.NDArray[np.float32], v: npt.NDArray[np.float32], input_scale: float, device: int = ...,
    partial_budget: int = ..., w_index: Optional[npt.NDArray[np.int64]] = ..., key_mask: Optional[npt.NDArray[np.uint8]] = ...,
) -> Tuple[npt.NDArray[np.float32], npt.NDArray[np.float64], npt.NDArray[np.float64], Dict[str, float]]: ...
def attention_cuda_float64(
    W: npt.NDArray[np.float64], bias: Optional[npt.NDArray[np.float64]], q: npt.NDArray[np.float64],
    k: npt.NDArray[np.float64], v: npt.NDArray[np.float64], input_scale: float, device: int = ...,
    partial_budget: int = ..., w_index: Optional[npt.NDArray[np.int64]] = ..., key_mask: Optional[npt.NDArray[np.uint8]] = ...,
) -> Tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64], Dict[str, float]]: ...
attention_cuda_emulated_float32 = attention_cuda_float32
attention_cuda_emulated_float64 = attention_cuda_float64
def cuda_device_count() -> int: ...
def cuda_device_name(device: int) -> str: ...
def cuda_memory_info(device: int) -> Tuple[int, int]: ...
def cuda_emulated_device_count() -> int: ...
def cuda_emulated_device_name(device: int) -> str: ...
def cuda_emulated_memory_info(device: int) -> Tuple[int, int]: ...
def cuda_emulated_peak_bytes() -> int: ...
