import math

import pytest
import torch

from exssnet.metrics import average_accuracy, average_accuracy_curve, forgetting, forgetting_per_task, sparse_overlap

MATRIX = [
    [90.0, None, None],
    [80.0, 70.0, None],
    [60.0, 75.0, 50.0],
]


def test_average_accuracy_is_mean_of_last_row():
    assert average_accuracy(MATRIX) == pytest.approx((60 + 75 + 50) / 3)


def test_forgetting_uses_best_earlier_accuracy():
    # task 0: best before the end 90, final 60 -> 30; task 1: best 70, final 75 -> -5
    assert forgetting_per_task(MATRIX) == [30.0, -5.0]
    assert forgetting(MATRIX) == pytest.approx(12.5)


def test_no_forgetting_when_rows_repeat():
    constant = [[99.0, None], [99.0, 98.0]]
    assert forgetting(constant) == 0.0
    assert forgetting([[42.0]]) == 0.0


def test_average_accuracy_curve():
    assert average_accuracy_curve(MATRIX) == pytest.approx([90.0, 75.0, 185 / 3])


def test_malformed_matrix_is_refused():
    with pytest.raises(ValueError):
        average_accuracy([[1.0, None], [None, 2.0]])
    with pytest.raises(ValueError):
        forgetting([])


def test_sparse_overlap_counts_previously_used_weights():
    m0 = {"a": torch.tensor([1, 1, 0, 0], dtype=torch.bool), "b": torch.tensor([1, 0], dtype=torch.bool)}
    m1 = {"a": torch.tensor([0, 1, 1, 0], dtype=torch.bool), "b": torch.tensor([1, 1], dtype=torch.bool)}
    m2 = {"a": torch.tensor([0, 0, 0, 1], dtype=torch.bool), "b": torch.tensor([0, 0], dtype=torch.bool)}
    # task1 keeps 4 weights, 2 of them (a[1], b[0]) were used by task0
    assert sparse_overlap([m0, m1, m2]) == [0.0, 0.5, 0.0]
    assert math.isclose(sparse_overlap([m0, m0])[1], 1.0)
