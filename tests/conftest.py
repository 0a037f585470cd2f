import math

import numpy as np
import pytest


def moderate_inputs(rng, shape_q, shape_k, dv, norm2=1.0, scale=None):
    """q, k with |q~|^2 = |k~|^2 = norm2 (x~ = x s^{1/2}, s = 1/sqrt(D)) and standard normal v."""
    d = shape_q[-1]
    s = 1.0 / math.sqrt(d) if scale is None else scale

    def draw(shape):
        x = rng.standard_normal(shape)
        x /= np.linalg.norm(x, axis=-1, keepdims=True)
        return x * math.sqrt(norm2 / s)

    q, k = draw(shape_q), draw(shape_k)
    v = rng.standard_normal(shape_k[:-1] + (dv,))
    return q, k, v


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


# Relative precision of one rounding in each dtype; tolerances below are multiples of it set by
# the length of the sums involved (a few hundred terms, accumulated in blocks).
EPS = {np.float32: float(np.finfo(np.float32).eps), np.float64: float(np.finfo(np.float64).eps)}
