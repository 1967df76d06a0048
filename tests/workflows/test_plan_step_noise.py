"""plan.point_step_noise: items between two anchors that have no stream get none (zero), even when another
anchor of the job has one (a morph prompt -> prompt -> image crashed on its first stretch)."""

from __future__ import annotations

import torch

from latentscape.sampling import StepNoise
from latentscape.workflows.plan import point_step_noise


def test_items_between_streamless_anchors_get_zero_while_others_keep_theirs():
    stream = StepNoise(noise=torch.randn(3, 1, 4, 2, 2), scales=torch.ones(3))
    out = point_step_noise([None, None, stream], a=[0, 1, 1], b=[1, 2, 2], t=[0.5, 0.25, 1.0])
    assert torch.equal(out.noise[:, 0], torch.zeros(3, 4, 2, 2))  # prompt -> prompt: no stream
    assert torch.allclose(out.noise[:, 1], 0.25 * stream.noise[:, 0])  # fades in towards the image
    assert torch.equal(out.noise[:, 2], stream.noise[:, 0])  # on the image: its stream bit for bit
