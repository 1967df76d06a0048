"""Adaptive delivery on a path with a known, steep jump: the delivered frames are measured and re-placed until
their steps are even, within the evaluation budget. The tree renders synthetic frames (a grey level that is
a steep sigmoid of the path position), so the distances are known and the test takes no model time."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

import latentscape
from latentscape.workflows.frame_tree import FrameTree, Node, adaptive_frames
from latentscape.workflows.morph_render import RenderSettings, build_anchors

STEPS = 10
FRAMES = 16


def grey(u: float, centre: float = 0.43, width: float = 0.01) -> Image.Image:
    level = 255.0 / (1.0 + math.exp(-(u - centre) / width))
    return Image.new("RGB", (16, 16), (round(level),) * 3)


class SyntheticTree(FrameTree):
    """A frame tree whose "renders" are grey frames; evaluations as a real render would count them."""

    def _render_chunk(self, chunk, store):
        start = chunk[0].start
        self.evaluations += len(chunk) * (self.settings.steps - start)
        keep = self._stored_from(start) if store else []
        return [Node(ins.u, ins.start, grey(ins.u), {k: torch.zeros(1, 4, 2, 2) for k in keep}) for ins in chunk]


@pytest.fixture(scope="module")
def sd(tiny_sd):
    return latentscape.load(str(tiny_sd))


def _tree(model, **kw) -> SyntheticTree:
    shape = model.latent_format.latent_shape(32, 32)
    anchors = build_anchors(model, ["a", "b"], [1, 2], [6.0, 6.0], "", shape, 1.0)
    settings = RenderSettings("euler", STEPS, 1.0, 0.0, 0.0, 0.75, "slerp", "lerp")
    return SyntheticTree(model, anchors, settings, "lab", img2img=False, closed=False, batch_size=4, **kw)


def _ratio(tree: FrameTree, positions) -> float:
    gaps = tree.steps_of(positions)
    return max(gaps) / float(np.mean(gaps))


def test_delivered_frames_are_re_placed_until_their_steps_are_even(sd):
    """A pure cut (all the change within 0.05 of the path) is the worst case: every frame first lands between
    two far-apart nodes, so it takes more than the default budget; 2 full renders per frame are allowed."""
    tree = _tree(sd)
    positions, images, _ = adaptive_frames(tree, FRAMES, 1.5, budget=2.0)
    assert len(images) == FRAMES and positions[0] == 0.0 and positions[-1] == 1.0
    assert positions == sorted(positions) and len(set(positions)) == FRAMES
    assert _ratio(tree, positions) <= 1.5
    # every delivered frame is a node of the tree, and the budget held
    assert all(tree.node_at(u) is not None for u in positions)
    assert tree.evaluations <= 2.0 * FRAMES * tree.full_render_evaluations
    # the frames crowd into the jump: more than half of them lie within 0.05 of its centre
    assert sum(abs(u - 0.43) < 0.05 for u in positions) > FRAMES // 2


def test_a_single_delivery_on_the_coarse_tree_misses_the_bound(sd):
    """What the re-check fixes: placed once on the grown tree, the frames' own steps are uneven."""
    tree = _tree(sd)
    tree.planned = FRAMES
    tree.seed()
    tree.grow(1.5, FRAMES, 1.0 / (4 * (FRAMES - 1)), min_nodes=FRAMES // 2)
    once, _ = tree.deliver(FRAMES, max_step=1.5, rounds=1)
    assert _ratio(tree, once) > 1.5
    again, _ = tree.deliver(FRAMES, max_step=1.5)
    assert _ratio(tree, again) < _ratio(tree, once)


def test_re_placement_stops_at_the_evaluation_budget(sd):
    tree = _tree(sd)
    positions, images, _ = adaptive_frames(tree, FRAMES, 1.01, budget=0.5)  # a bound too tight to meet
    assert len(images) == FRAMES
    first_delivery = FRAMES * STEPS  # at most: every frame a full render (the first delivery always completes)
    assert tree.evaluations <= 0.5 * FRAMES * STEPS + first_delivery
    # with a budget already spent, a delivery renders its frames once (one placement) and re-places nothing
    nodes, before = len(tree.nodes), tree.evaluations
    chosen = tree.place(FRAMES)
    missing = sum(tree.node_at(u) is None for u in chosen)
    delivered, _ = tree.deliver(FRAMES, max_step=1.01, max_evaluations=0)
    assert delivered == chosen and len(tree.nodes) == nodes + missing
    assert tree.evaluations - before <= missing * STEPS


def test_place_never_snaps_a_frame_onto_a_keyframe_or_backwards(sd):
    tree = _tree(sd)
    tree.planned = FRAMES
    tree.seed()
    tree.grow(1.5, FRAMES, 1.0 / (4 * (FRAMES - 1)), min_nodes=FRAMES // 2)
    for snap in (0.1, 0.5, 1.0):
        chosen = tree.place(FRAMES, snap=snap)
        assert chosen == sorted(chosen) and len(set(chosen)) == FRAMES
        assert [u for u in chosen if float(u).is_integer()] == [0.0, 1.0]
