import pytest
import torch

from latentscape.core.metrics import (
    is_monotone, label_accuracy, mean_pairwise_distance, nearest_neighbours, pairwise_distances, retrieval_accuracy,
)


def test_pairwise_distances_are_rms():
    x = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [2.0, 0.0, 0.0, 0.0]])
    d = pairwise_distances(x)
    assert d.shape == (3, 3)
    assert torch.allclose(d, d.T) and torch.all(d.diagonal() == 0)
    assert d[0, 1].item() == pytest.approx(1.0)  # every value differs by 1
    assert d[0, 2].item() == pytest.approx(1.0)  # sqrt(4 / 4)


def test_mean_pairwise_distance():
    x = torch.tensor([[0.0], [1.0], [3.0]])
    assert mean_pairwise_distance(x) == pytest.approx((1 + 3 + 2) / 3)
    assert mean_pairwise_distance(x[:1]) == 0.0
    assert mean_pairwise_distance(torch.ones(4, 2, 2)) == 0.0  # identical images: no diversity


def test_nearest_neighbours_and_retrieval():
    refs = torch.tensor([[0.0, 0.0], [10.0, 10.0], [0.0, 10.0]])
    queries = torch.tensor([[1.0, 1.0], [9.0, 8.0], [1.0, 9.0], [0.2, 0.1]])
    assert nearest_neighbours(queries, refs, chunk=2).tolist() == [0, 1, 2, 0]
    scores = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert retrieval_accuracy(scores, [1, 0, 0]) == pytest.approx(2 / 3)
    assert retrieval_accuracy(scores, [0, 1, 0], lower_is_better=True) == 1.0
    with pytest.raises(ValueError):
        retrieval_accuracy(scores, [0, 1])


def test_label_accuracy_and_monotone():
    assert label_accuracy(["a", "b", "c"], ["a", "x", "c"]) == pytest.approx(2 / 3)
    assert is_monotone([0.1, 0.2, 0.2, 0.5])
    assert not is_monotone([0.1, 0.3, 0.2])
    assert is_monotone([0.1, 0.3, 0.29], tol=0.02)
    assert is_monotone([3, 2, 1], increasing=False)
