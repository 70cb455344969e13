"""The layer view's data: each layer's share of a donor's weight change, and the aligned figure."""
import pytest
import torch

from neuronlab.neurons.scores import Scores
from neuronlab.plots import layer_view_figure
from neuronlab.transfer.ranking import weight_change_shares


def test_shares_are_each_layers_part_of_the_squared_change_over_all_sites():
    diff = Scores({"mlp": torch.tensor([[3.0, 4.0], [0.0, 0.0], [0.0, 5.0]]),  # squared per layer: 25, 0, 25
                   "attn_o": torch.tensor([[0.0], [5.0], [0.0]])})  # 0, 25, 0
    assert weight_change_shares(diff) == pytest.approx([25 / 75, 25 / 75, 25 / 75])
    assert weight_change_shares(Scores({"mlp": torch.tensor([[0.0, 6.0], [0.0, 0.0]])})) == [1.0, 0.0]


def test_no_change_is_no_share():
    assert weight_change_shares(Scores({"mlp": torch.zeros(3, 4)})) == [0.0, 0.0, 0.0]


def test_the_figure_has_one_row_per_measure_on_one_layer_axis():
    counts = {"MS en": [0, 3, 1], "SS": [0, 1, 0]}
    fig = layer_view_figure(counts, {"harmful": [0.0, -1.5, -0.2]}, [0.1, 0.7, 0.2])
    assert fig.layout.meta["rows"] == ["counts", "effect", "weight"]
    bars = {t.name: t for t in fig.data}
    assert list(bars["MS en"].y) == [0, 3, 1] and list(bars["off: harmful"].y) == [0.0, -1.5, -0.2]
    assert list(bars["weight change"].y) == pytest.approx([10, 70, 20])  # percent
    assert bars["MS en"].xaxis == "x" and bars["off: harmful"].xaxis == "x2"  # stacked rows, shared layers
    assert fig.layout.xaxis2.matches == "x3" or fig.layout.xaxis.matches == "x3"


def test_rows_without_data_are_left_out():
    fig = layer_view_figure({"MS en": [1, 2]})
    assert fig.layout.meta["rows"] == ["counts"] and len(fig.data) == 1
