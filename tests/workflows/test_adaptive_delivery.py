"""Adaptive delivery on paths with a known, steep jump: the tree grows where the steps look largest and the
delivered frames are *chosen* among its nodes so that their steps are even by both distances, within the
evaluation budget. The tree renders synthetic frames (a grey level that is a steep sigmoid of the path
position), so the distances are known and the tests take no model time."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

import latentscape
from latentscape.workflows.frame_tree import BUDGET, FrameTree, Node, adaptive_frames
from latentscape.workflows.morph_render import RenderSettings, build_anchors

STEPS = 10
FRAMES = 16


_Y, _X = np.mgrid[0:32, 0:32] / 31.0
PATTERN_A = np.stack([0.5 + 0.3 * np.sin(_X * 12), 0.4 + 0.2 * _Y, 0.5 + 0.0 * _X], -1)  # stripes
PATTERN_B = np.stack([0.3 + 0.4 * ((_X - 0.5) ** 2 + (_Y - 0.5) ** 2 < 0.1), 0.6 - 0.2 * _X, 0.4 + 0.3 * _Y], -1)  # a disk


def frame(u: float, centre: float = 0.43, width: float = 0.01) -> Image.Image:
    """A cross-fade from pattern A to B (back on odd segments) that happens within ~0.05 of the segment."""
    k = math.floor(u)
    w = 1.0 / (1.0 + math.exp(-(u - k - centre) / width))
    w = 1.0 - w if k % 2 else w
    return Image.fromarray(np.round(255 * ((1 - w) * PATTERN_A + w * PATTERN_B)).astype(np.uint8))


class SyntheticTree(FrameTree):
    """A frame tree whose "renders" are synthetic frames; evaluations as a real render would count them."""

    def _render_chunk(self, chunk, store):
        start = chunk[0].start
        self.evaluations += len(chunk) * (self.settings.steps - start)
        keep = self._stored_from(start) if store else []
        return [Node(ins.u, ins.start, self.image(ins.u), {k: torch.zeros(1, 4, 2, 2) for k in keep}) for ins in chunk]

    def image(self, u: float) -> Image.Image:
        return frame(u)


@pytest.fixture(scope="module")
def sd(tiny_sd):
    return latentscape.load(str(tiny_sd))


def _tree(model, keyframes=2, closed=False, cls=SyntheticTree, **kw) -> FrameTree:
    shape = model.latent_format.latent_shape(32, 32)
    anchors = build_anchors(model, ["a", "b", "c"][:keyframes], [1, 2, 3][:keyframes], [6.0] * keyframes, "", shape, 1.0)
    settings = RenderSettings("euler", STEPS, 1.0, 0.0, 0.0, 0.75, "slerp", "lerp")
    return cls(model, anchors, settings, "lab", img2img=False, closed=closed, batch_size=4, **kw)


def _ratios(tree: FrameTree, positions) -> dict[str, float]:
    nodes = [tree.node_at(u) for u in positions] + ([tree.path_nodes()[-1]] if tree.closed else [])
    out = {}
    for metric in ("lab", "ssim"):
        gaps = tree.distances(list(zip(nodes, nodes[1:])), metric)
        out[metric] = max(gaps) / float(np.mean(gaps))
    return out


def test_delivered_frames_are_even_by_both_distances_within_the_budget(sd):
    """A pure cut (all the change within 0.05 of the path): 16 uniform frames put it in one step. The worst
    case for the budget (and only 10 steps, so a deep branch still costs 2 of them): one full render per
    frame and twice a uniform render's time are allowed."""
    uniform = [frame(u) for u in np.linspace(0, 1, FRAMES)]
    tree = _tree(sd)
    positions, images, stop = adaptive_frames(tree, FRAMES, 1.5, budget=1.0, wall=2.0)
    assert stop == "even" and len(images) == FRAMES and positions[0] == 0.0 and positions[-1] == 1.0
    assert positions == sorted(positions) and len(set(positions)) == FRAMES
    ratios = _ratios(tree, positions)
    assert ratios["lab"] <= 1.5 and ratios["ssim"] <= 1.5, ratios
    # every delivered frame is a node of the tree (its image what was rendered), and the budget held
    assert all(tree.node_at(u).image is im for u, im in zip(positions, images))
    assert tree.evaluations <= 1.0 * FRAMES * tree.full_render_evaluations
    # the frames crowd into the jump: more than half of them lie within 0.05 of its centre
    assert sum(abs(u - 0.43) < 0.05 for u in positions) > FRAMES // 2
    # the uniform frames' own steps are far from even
    from latentscape.workflows.morph_pacing import consecutive_distances

    lab = consecutive_distances(uniform, "lab")
    assert max(lab) / np.mean(lab) > 5


def test_a_cut_is_crossed_by_deep_branches(sd):
    """Once bisection has narrowed the jump below a quarter of a frame step, the gap is crossed by several
    branches started as deep as the tree allows (cheap: the remaining steps only)."""
    tree = _tree(sd)
    adaptive_frames(tree, FRAMES, 1.5, budget=1.0, wall=2.0)
    inside = [n for n in tree.nodes if abs(n.u - 0.43) < 1 / (4 * (FRAMES - 1))]
    deepest = max(tree.branch_steps)
    assert sum(n.start == deepest for n in inside) >= 3


def test_growth_stops_at_the_evaluation_budget(sd):
    tree = _tree(sd)
    positions, images, stop = adaptive_frames(tree, FRAMES, 1.01, budget=BUDGET)  # a bound too tight to meet
    assert stop == "budget" and len(images) == FRAMES
    assert tree.evaluations <= BUDGET * FRAMES * STEPS
    # a tighter node budget stops earlier, with as many nodes as it allows
    capped = _tree(sd)
    *_, stop = adaptive_frames(capped, FRAMES, 1.01, max_nodes=FRAMES + 2)
    assert stop == "node budget" and len(capped.nodes) <= FRAMES + 2 + capped.batch_size


def test_growth_stops_at_the_time_budget(sd):
    """The estimated time (denoiser calls, decodes, rounds) stays within ``wall`` uniform renders: a tighter
    bound stops earlier, with fewer nodes, and still delivers every frame."""
    from latentscape.workflows.frame_tree import Insertion

    spent = {}
    for wall in (1.2, 2.0):
        tree = _tree(sd)
        positions, images, stop = adaptive_frames(tree, FRAMES, 1.01, budget=10.0, wall=wall)
        uniform = tree.time_cost([Insertion(i / (FRAMES - 1), 0) for i in range(FRAMES)])
        assert stop == "budget" and len(images) == FRAMES and tree.time_spent <= wall * uniform
        spent[wall] = (tree.time_spent, len(tree.nodes))
    assert spent[1.2][0] < spent[2.0][0] and spent[1.2][1] < spent[2.0][1]


def test_pinned_keyframes_stay_on_their_frames_and_eased_steps_follow_the_easing(sd):
    tree = _tree(sd, keyframes=3)
    positions, _, _ = adaptive_frames(tree, 13, 1.5, counts=[4, 8])
    assert len(positions) == 13 and positions[0] == 0.0 and positions[4] == 1.0 and positions[12] == 2.0
    assert [u for u in positions if float(u).is_integer()] == [0.0, 1.0, 2.0]
    eased = _tree(sd, keyframes=3)
    positions, _, _ = adaptive_frames(eased, 13, 1.5, easing="in_out", counts=[4, 8])
    assert positions[4] == 1.0 and positions[12] == 2.0
    # ease in/out: the first and last steps of the long second segment are its shortest
    nodes = [eased.node_at(u) for u in positions[4:]]
    gaps = eased.distances(list(zip(nodes, nodes[1:])))
    assert max(gaps[0], gaps[-1]) < min(gaps[2:-2])


def test_a_closed_path_delivers_a_loop(sd):
    """Two cuts (there and back) for 12 frames at 10 steps: the loop's mechanics, at 2 full renders a frame
    (and three times a uniform render's time)."""
    tree = _tree(sd, closed=True)
    positions, images, _ = adaptive_frames(tree, 12, 1.5, budget=2.0, wall=3.0)
    assert len(images) == 12 and positions[0] == 0.0 and 1.0 in positions and max(positions) < 2.0
    assert positions == sorted(positions) and len(set(positions)) == 12
    ratios = _ratios(tree, positions)  # including the step from the last frame back to the first
    assert ratios["lab"] <= 1.5 and ratios["ssim"] <= 1.5, ratios
