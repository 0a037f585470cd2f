"""The plot helpers check their data before drawing, naming the argument; monitor traces take the
network's head numbers."""

from __future__ import annotations

import typing

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from tripartite import NeuronAstrocyteNetwork  # noqa: E402
from tripartite import plots  # noqa: E402
from tripartite.plots import astrocyte_vs_normaliser, calcium_trace, error_vs_m, figure, synapse_traces  # noqa: E402


@pytest.fixture
def ax():
    import matplotlib.pyplot as plt

    fig, axes = figure(1)
    yield axes[0]
    plt.close(fig)


def untouched(ax) -> bool:
    return not ax.lines and not ax.collections and not ax.patches


@pytest.mark.parametrize("a, Z, match", [
    ([], [], "a must have at least one value"),
    ([1.0], [], "Z must have at least one value"),
    ([1.0, 2.0], [1.0, 2.0, 3.0], "a and Z must have one value per point each, got 2 and 3 values"),
    ([1.0, np.nan], [1.0, 2.0], r"a must not be NaN, got nan at index \(1,\)"),
    ([1.0, 2.0], [np.nan, 1.0], "Z must not be NaN"),
    ([0.0, 2.0], [1.0, np.inf], r"a and Z have no point a log-log axis can show \(all 2 have a = 0 or an inf\)"),
    ([1.0, 2.0], [0.0, 2.0], "Z must be positive"),
    ([-1.0, 2.0], [1.0, 2.0], "a must be non-negative"),
    (["x"], [1.0], "a must have a real numeric dtype"),
])
def test_astrocyte_vs_normaliser_checks(ax, a, Z, match):
    with pytest.raises(ValueError, match=match):
        astrocyte_vs_normaliser(ax, a, Z)
    assert untouched(ax)


def test_astrocyte_vs_normaliser_draws(ax):
    astrocyte_vs_normaliser(ax, [[1.0, 0.0, 3.0]], [1.0, 2.0, 3.0])  # any shape; a = 0 (underflow) accepted
    assert len(ax.collections) == 1 and len(ax.lines) == 1


@pytest.mark.parametrize("ms, errors, match", [
    ([], [], "ms must have at least one value"),
    ([1, 2], [0.1], "ms and errors must have one value per point each, got 2 and 1 values"),
    ([1, 2], [0.1, np.nan], "errors must be finite"),
    ([0, 2], [0.1, 0.2], "ms must be positive"),
    ([1, 2], [0.0, 0.2], "errors must be positive"),
])
def test_error_vs_m_checks(ax, ms, errors, match):
    with pytest.raises(ValueError, match=match):
        error_vs_m(ax, ms, errors)
    assert untouched(ax)


@pytest.fixture
def monitor():
    rng = np.random.default_rng(0)
    net = NeuronAstrocyteNetwork(4, 2, 16, heads=3, t_read=50.0)
    mon = net.monitor(("calcium", "synapses"), heads=[2, 1], synapses=[(0, 0), (1, 2)], every=5)
    k, v = (rng.standard_normal((3, 2, n)) * 0.3 for n in (4, 2))
    net.write(k, v)
    net.read(k)
    return mon


def test_traces_take_the_networks_head_numbers(ax, monitor):
    calcium_trace(ax, monitor, head=1)  # recorded second
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), monitor.calcium[:, 1])
    calcium_trace(ax, monitor)  # default: the first recorded head, 2
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), monitor.calcium[:, 0])
    synapse_traces(ax, monitor, head=2)
    np.testing.assert_array_equal(ax.lines[2].get_ydata(), monitor.synapses[:, 0, 0])


@pytest.mark.parametrize("trace", [calcium_trace, synapse_traces])
@pytest.mark.parametrize("head", [0, -1, 3, 1.0, True])
def test_traces_refuse_a_head_not_recorded(ax, monitor, trace, head):
    with pytest.raises(ValueError, match=r"head must be one of the heads the monitor records, \[2, 1\] .*got "):
        trace(ax, monitor, head=head)
    assert untouched(ax)


def test_traces_need_a_monitor_of_the_variable(ax):
    net = NeuronAstrocyteNetwork(4, 2, 8)
    with pytest.raises(ValueError, match="monitor must record 'synapses'"):
        synapse_traces(ax, net.monitor("calcium"))
    with pytest.raises(ValueError, match="monitor must be a StateMonitor"):
        calcium_trace(ax, object())
    assert untouched(ax)


def test_figure_checks_and_annotation():
    assert typing.get_type_hints(plots.figure)["return"] == typing.Tuple[typing.Any, np.ndarray]
    for kwargs, match in ((dict(ncols=0), "ncols must be a positive integer"), (dict(width=-1.0), "width must be positive"),
                          (dict(height=float("nan")), "height must be finite")):
        with pytest.raises(ValueError, match=match):
            figure(**kwargs)


def test_astrocyte_vs_normaliser_leaves_out_what_a_log_axis_cannot_show(ax):
    """An a_t of 0 (underflow) or an inf (Z_t or a_t overflowed at extreme norms, which the study
    can meet) has no place on the log-log axes: left out, the others drawn."""
    astrocyte_vs_normaliser(ax, [1.0, 0.0, 2.0, np.inf], [1.5, 2.0, np.inf, 3.0])
    (points,) = ax.collections
    assert np.array_equal(points.get_offsets(), [[1.5, 1.0]])
