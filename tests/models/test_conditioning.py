import pytest
import torch

from latentscape.models.conditioning import Conditioning


def _c(v, pooled=True, n=1):
    return Conditioning(embeds=torch.full((n, 3, 2), float(v)), pooled=torch.full((n, 4), float(v)) if pooled else None)


def test_cat_select_repeat():
    c = Conditioning.cat([_c(1), _c(2)])
    assert len(c) == 2 and c.pooled.shape == (2, 4)
    assert torch.equal(c.select(1).embeds, _c(2).embeds)
    r = c.repeat(2)
    assert r.embeds[:, 0, 0].tolist() == [1, 1, 2, 2]


def test_zip_map_and_weighted_sum():
    mid = _c(0).zip_map(_c(4), lambda a, b: (a + b) / 2)
    assert torch.equal(mid.pooled, _c(2).pooled)
    ws = Conditioning.weighted_sum([_c(1), _c(3)], [0.25, 0.75])
    assert torch.allclose(ws.embeds, _c(2.5).embeds)


def test_mismatched_fields_are_refused():
    with pytest.raises(ValueError, match="pooled"):
        _c(1).zip_map(_c(1, pooled=False), lambda a, b: a)
    with pytest.raises(ValueError, match="pooled"):
        Conditioning.cat([_c(1), _c(1, pooled=False)])
