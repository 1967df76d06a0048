"""A shared-trajectory frame tree: in-between frames that start part-way through the schedule.

After latentblending's tree of branches: every frame of the tree is a *node* at a path position ``u``. The
keyframes are rendered in full (so they stay exactly their standalone ``generate``) and keep their latents
at the steps a branch may start from. A new frame at ``u`` between nodes L and R starts at step k from
``interpolate(L.latents[k], R.latents[k], s)`` (``s`` its place between them, ``interpolation`` as for the
noise: slerp by default) with its own conditioning, CFG and step noise interpolated at ``u`` exactly as a
full render of ``u`` has them, so it costs (N − k)/N of a full render. k is chosen per insertion from the
perceptual distance d between L's and R's images relative to the distance D between the segment's two
keyframe images: ``k ≈ depth·√(1 − d/D)·N``, snapped down to the tree's branch steps — shallow (k = 0, a full
render) where neighbours differ as much as the keyframes, deeper where they are close. A branch never
starts above its parents' own start steps (they hold no latents there); when the wanted step is shallower
than that, the frame is rendered in full instead.

Delivery re-checks what it delivers: the ``frames`` frames are placed evenly in the tree's cumulative
distance (linear between nodes), rendered as branches and *measured*. While their largest step is above
``max_step`` times their mean (and the evaluation budget allows), the midpoint of each too-large delivered
step is inserted — branched as deep as the parents allow where that step is already narrower than the
tree's bisection limit (a jump that bisection cannot split is a cut in the full renders' trajectory; a
deep branch from the latents on both sides of it crosses it gradually) — and the frames are re-placed on
the denser tree. The best-measured set is delivered. Every delivered frame is a node of the tree.

Memory is bounded: a node stores its latents at each branch step from its own start on (latents, not
images), and the tree never holds more than ``max_stored_latents`` of them: a node that would exceed the
bound keeps none, so frames next to it branch from farther nodes or are full renders (costlier, never
wrong).

Samplers: single-step samplers (euler, euler_a, ddim, lcm, flow_euler) branch exactly: a branch started at
step k from a node's own latents reproduces that node (stochastic samplers' step-noise streams are advanced
to step k by ``sampling.denoise``). Second-order heun branches at step boundaries, where its state is just
the latents (exact too). Multistep samplers (dpmpp_2m, dpmpp_2m_karras, unipc) keep a history of model
outputs that a branch does not have: they restart their order at the branch step, as diffusers' img2img
does (first-order first step, then full order; close to, not equal to, a full render of that frame).
Keyframes are always full renders, so they stay exact with every sampler.

Image keyframes (img2img paths): the schedule starts at step ``N − ⌊N·strength⌋``; branch steps lie after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from latentscape.core.interpolate import INTERPOLATORS
from latentscape.core.pacing import repace
from latentscape.core.paths import locate, segment_count
from latentscape.models.family import Family
from latentscape.samplers import make_scheduler
from latentscape.sampling import StepCallback, StepState, start_index
from latentscape.workflows.common import decode_images
from latentscape.workflows.morph_pacing import pair_distances
from latentscape.workflows.morph_render import Anchors, RenderSettings, render_latents

BRANCH_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)  # of the schedule: where branches may start
DEPTH = 0.7  # the deepest start, as a fraction of the steps, for neighbours that look alike
MAX_STORED_LATENTS = 256
SNAP = 0.1  # a delivered frame within this fraction of a step of a tree node (in distance) is that node
BUDGET = 1.0  # model evaluations per delivered frame, as a fraction of a full render, re-checks may bring it to
ROUNDS = 4  # deliveries measured at most (the first one and up to three re-placements)

Progress = Callable[[str, int, int], None]


@dataclass
class Node:
    """One rendered frame of the tree: its path position, the step it started from, its image and its
    latents at the branch steps from its start on (empty where the memory bound was reached)."""

    u: float
    start: int
    image: Image.Image
    latents: dict[int, torch.Tensor] = field(default_factory=dict)  # step -> (1, C, h, w)


@dataclass(frozen=True)
class Insertion:
    u: float
    start: int
    left: Node | None = None  # the parents a branch starts from (None for a full render)
    right: Node | None = None


class FrameTree:
    """Nodes along a path of ``len(anchors.cfg)`` keyframes, rendered through :func:`render_latents`.

    ``evaluations`` counts model evaluations (one per item per denoiser call; CFG's cond + uncond pair
    is one), ``full_render_evaluations`` what one frame rendered from the schedule's first step costs.
    """

    def __init__(self, model: Family, anchors: Anchors, settings: RenderSettings, metric: str, *, img2img: bool,
                 closed: bool, batch_size: int = 8, max_stored_latents: int = MAX_STORED_LATENTS,
                 depth: float = DEPTH, callback: StepCallback | None = None, progress: Progress | None = None):
        if max_stored_latents < 0:
            raise ValueError(f"max_stored_latents must be >= 0, got {max_stored_latents}")
        self.model, self.anchors, self.settings, self.metric = model, anchors, settings, metric
        self.img2img, self.closed, self.batch_size = img2img, closed, batch_size
        self.max_stored_latents, self.depth = max_stored_latents, depth
        self.callback, self.progress = callback, progress
        self.n_keyframes = len(anchors.cfg)
        self.segments = segment_count(self.n_keyframes, closed)
        steps = settings.steps
        self.order = make_scheduler(settings.sampler, model.scheduler_config, model.is_flow).order
        self.first = start_index(steps, settings.strength, 1) if img2img else 0
        self.branch_steps = sorted({round(f * steps) for f in BRANCH_FRACTIONS} - {0} & set(range(self.first + 1, steps)))
        self.nodes: list[Node] = []
        self.evaluations = 0
        self.full_render_evaluations = 0  # measured on the keyframes' renders (heun: 2N - 1 evaluations)
        self.planned = 0  # frames the progress bar counts to
        self._distances: dict[tuple[float, float], float] = {}

    # --- bookkeeping -----------------------------------------------------------------------------------
    @property
    def stored_latents(self) -> int:
        return sum(len(n.latents) for n in self.nodes)

    def _stored_from(self, start: int) -> list[int]:
        return [s for s in self.branch_steps if s >= start]

    def _end(self) -> float:
        return float(self.segments)

    def node_at(self, u: float) -> Node | None:
        if self.closed and u == self._end():
            u = 0.0
        return next((n for n in self.nodes if n.u == u), None)

    def path_nodes(self) -> list[Node]:
        """Nodes in path order; a closed path ends on keyframe 0's node again (at u = S)."""
        nodes = sorted(self.nodes, key=lambda n: n.u)
        if self.closed and nodes and nodes[0].u == 0.0:
            nodes = nodes + [Node(self._end(), nodes[0].start, nodes[0].image, nodes[0].latents)]
        return nodes

    def distance(self, a: Node, b: Node) -> float:
        return self.distances([(a, b)])[0]

    def distances(self, pairs: Sequence[tuple[Node, Node]]) -> list[float]:
        """Perceptual distances of node pairs (cached by their positions)."""
        todo = [(a, b) for a, b in pairs if (a.u, b.u) not in self._distances]
        for (a, b), d in zip(todo, pair_distances([(a.image, b.image) for a, b in todo], self.metric)):
            self._distances[(a.u, b.u)] = d
        return [self._distances[(a.u, b.u)] for a, b in pairs]

    def segment_distance(self, u: float) -> float:
        """D: the distance between the two keyframes of the segment holding ``u``."""
        k = min(int(np.floor(u)), self.segments - 1)
        return self.distance(self.node_at(float(k)), self.node_at(float(k + 1)))

    # --- choosing where a branch starts ----------------------------------------------------------------
    def insertion(self, u: float, left: Node, right: Node, deep: bool = False) -> Insertion:
        """How to render a frame at ``u`` between ``left`` and ``right``: from step k of their latents
        (``deep``: as deep as ``depth`` allows, whatever their distance)."""
        d, big = self.distance(left, right), self.segment_distance(u)
        closeness = 1.0 if deep else 1.0 - min(d / big, 1.0) if big > 0 else 1.0
        wanted = self.first + self.depth * closeness**0.5 * (self.settings.steps - self.first)
        lowest = max(left.start, right.start)
        usable = [s for s in self.branch_steps if lowest <= s <= wanted and s in left.latents and s in right.latents]
        if not usable:
            return Insertion(u, self.first)  # shallower than the parents allow: a full render
        return Insertion(u, max(usable), left, right)

    def between(self, u: float, parents: bool = False) -> tuple[Node, Node]:
        """The nodes either side of ``u`` (``parents``: the nearest ones holding latents, where there are)."""
        nodes = self.path_nodes()
        i = int(np.searchsorted([n.u for n in nodes], u, side="right"))
        if not parents:
            return nodes[i - 1], nodes[i]
        left = next((n for n in reversed(nodes[:i]) if n.latents), nodes[i - 1])
        right = next((n for n in nodes[i:] if n.latents), nodes[i])
        return left, right

    def cost(self, insertions: Sequence[Insertion]) -> float:
        """Model evaluations the insertions will take (a full render's share per remaining step)."""
        span = self.settings.steps - self.first
        return sum(self.full_render_evaluations * (self.settings.steps - ins.start) / span for ins in insertions)

    # --- rendering -------------------------------------------------------------------------------------
    def render(self, insertions: Sequence[Insertion], *, store: bool = True, stage: str = "tree") -> list[Node]:
        """Render the insertions (grouped by start step, ``batch_size`` at a time); ``store`` keeps them in
        the tree with their latents at the branch steps. Returns the new nodes in the given order."""
        out: dict[int, Node] = {}
        order = sorted(range(len(insertions)), key=lambda i: (insertions[i].start, insertions[i].u))
        done = 0
        for start in sorted({ins.start for ins in insertions}):
            group = [i for i in order if insertions[i].start == start]
            for c in range(0, len(group), self.batch_size):
                chunk = group[c:c + self.batch_size]
                for i, node in zip(chunk, self._render_chunk([insertions[i] for i in chunk], store)):
                    out[i] = node
                done += len(chunk)
                if self.progress is not None:
                    base = len(self.nodes) if store else 0
                    self.progress(stage, base + done, max(self.planned, base + len(insertions)))
        nodes = [out[i] for i in range(len(insertions))]
        if store:
            for node in nodes:
                if self.stored_latents + len(node.latents) > self.max_stored_latents:
                    node.latents = {}  # over the bound: a frame, but no parent for branches
                self.nodes.append(node)
            assert self.stored_latents <= self.max_stored_latents
        return nodes

    def _render_chunk(self, chunk: Sequence[Insertion], store: bool) -> list[Node]:
        start = chunk[0].start
        points = [locate(ins.u, self.n_keyframes, self.closed) for ins in chunk]
        keep = self._stored_from(start) if store else []
        captured: dict[int, list[torch.Tensor]] = {}
        batch = len(chunk)

        def capture(state: StepState):
            self.evaluations += batch
            evaluation = start * self.order + state.step + 1
            if evaluation % self.order == 0 and (step := evaluation // self.order) in keep and step > start:
                captured[step] = [x.clone() for x in state.latents.split(1)]
            if self.callback is not None:
                return self.callback(state)
            return None

        if start == self.first:
            latents = render_latents(self.model, self.anchors, points, self.settings, img2img=self.img2img, callback=capture)
        else:
            interp = INTERPOLATORS[self.settings.interpolation]
            parents_a = torch.cat([ins.left.latents[start] for ins in chunk])
            parents_b = torch.cat([ins.right.latents[start] for ins in chunk])
            s = torch.tensor([(ins.u - ins.left.u) / (ins.right.u - ins.left.u) for ins in chunk], dtype=torch.float64)
            begin = interp(parents_a, parents_b, s)
            if start in keep:
                captured[start] = [x.clone() for x in begin.split(1)]
            latents = render_latents(self.model, self.anchors, points, self.settings, img2img=self.img2img,
                                     callback=capture, start_step=start, start_latents=begin)
        images = decode_images(self.model, latents)
        return [Node(ins.u, start, im, {k: v[j] for k, v in captured.items()}) for j, (ins, im) in enumerate(zip(chunk, images))]

    # --- growing and delivering ------------------------------------------------------------------------
    def seed(self) -> None:
        """The keyframes in full (exact), then each segment's midpoint (a full render: it differs from
        both keyframes as much as they differ from each other)."""
        self.render([Insertion(float(k), self.first) for k in range(self.n_keyframes)])
        self.full_render_evaluations = self.evaluations // self.n_keyframes
        self.render([self.insertion(k + 0.5, *self.between(k + 0.5)) for k in range(self.segments)])

    def grow(self, max_step: float, max_nodes: int, min_width: float, min_nodes: int = 0) -> str:
        """Insert midpoints into the largest gaps until there are ``min_nodes`` nodes (so a jump cannot hide
        between two even-looking coarse gaps) and the largest adjacent distance between nodes is at most
        ``max_step`` times the mean, or ``max_nodes`` nodes. Gaps narrower than
        ``min_width`` (in u) are not split: a jump that survives bisection down to there is a cut in the
        model's own trajectory, which more frames cannot smooth. Returns why growth stopped."""
        while True:
            nodes = self.path_nodes()
            gaps = self.distances(list(zip(nodes, nodes[1:])))
            mean = float(np.mean(gaps))
            dense = len(self.nodes) >= min_nodes
            if dense and (mean <= 0 or max(gaps) <= max_step * mean):
                return "even"
            room = max_nodes - len(self.nodes)
            if room <= 0:
                return "node budget"
            limit = max_step * mean if dense else -1.0
            worst = sorted((i for i, g in enumerate(gaps) if g > limit), key=lambda i: -gaps[i])
            wanted = min(room, self.batch_size) if dense else min(room, self.batch_size, min_nodes - len(self.nodes))
            worst = [i for i in worst if nodes[i + 1].u - nodes[i].u >= 2 * min_width][:wanted]
            if not worst:
                return "cut"
            self.render([self.insertion((nodes[i].u + nodes[i + 1].u) / 2, nodes[i], nodes[i + 1]) for i in worst])

    def place(self, frames: int, easing: str = "linear", counts: Sequence[int] | None = None, snap: float = SNAP) -> list[float]:
        """``frames`` positions evenly spaced in the tree's cumulative distance (linear between nodes;
        ``counts``: fixed gaps per segment, for frame-pinned keyframes). A position within ``snap`` of a
        frame step (in distance) from a node is that node."""
        nodes = self.path_nodes()
        us = [n.u for n in nodes]
        gaps = self.distances(list(zip(nodes, nodes[1:])))
        measured = us[:-1] if self.closed else us
        positions = repace(measured, gaps, self.n_keyframes, self.closed, easing, frames=frames, counts=counts)
        arc = np.concatenate([[0.0], np.cumsum(gaps)])
        at = np.interp(positions, us, arc)
        targets_arc = list(at) + ([arc[-1]] if self.closed else [])
        used: set[float] = set()
        chosen: list[float] = []
        for j, (u, a) in enumerate(zip(positions, at)):
            spacing = min(abs(targets_arc[j + 1] - a) if j + 1 < len(targets_arc) else np.inf,
                          abs(a - targets_arc[j - 1]) if j > 0 else np.inf)
            near = int(np.argmin(np.abs(arc - a)))
            if self.node_at(u) is not None:
                chosen.append(u)
            elif (abs(arc[near] - a) <= snap * spacing and us[near] not in used and not float(us[near]).is_integer()
                  and (not chosen or us[near] > chosen[-1])):  # keyframes stay where the pacing put them
                chosen.append(us[near])
            else:
                chosen.append(u)
            used.add(chosen[-1])
        return chosen

    def steps_of(self, chosen: Sequence[float]) -> list[float]:
        """Adjacent distances of the rendered frames at ``chosen`` (closed paths: back to the first too)."""
        nodes = [self.node_at(u) for u in chosen]
        if self.closed:
            nodes.append(self.path_nodes()[-1])
        return self.distances(list(zip(nodes, nodes[1:])))

    def deliver(self, frames: int, easing: str = "linear", counts: Sequence[int] | None = None, *,
                max_step: float | None = None, max_evaluations: float = float("inf"), min_width: float = 0.0,
                rounds: int = ROUNDS) -> tuple[list[float], list[Image.Image]]:
        """``frames`` frames evenly spaced in perceptual distance along the tree (see :meth:`place`), the
        missing ones rendered as branches (and kept as nodes). With ``max_step``, the delivered frames are
        measured and, while their largest step exceeds ``max_step`` times the mean and ``max_evaluations``
        allow, the too-large steps are split (deep branches where a step is narrower than ``2·min_width``)
        and the frames re-placed, ``rounds`` times at most; the best-measured set is returned."""
        best: tuple[float, list[float]] | None = None
        for round_ in range(rounds):
            chosen = self.place(frames, easing, counts)
            missing = [self.insertion(u, *self.between(u, parents=True)) for u in chosen if self.node_at(u) is None]
            if best is not None and self.evaluations + self.cost(missing) > max_evaluations:
                break
            self.planned = len(missing)
            self.render(missing, stage="in-between")
            gaps = self.steps_of(chosen)
            mean = float(np.mean(gaps))
            ratio = max(gaps) / mean if mean > 0 else 1.0
            if best is None or ratio < best[0]:
                best = (ratio, chosen)
            if max_step is None or ratio <= max_step or round_ == rounds - 1:
                break
            ends = chosen + ([self._end()] if self.closed else [])
            worst = sorted((i for i, g in enumerate(gaps) if g > max_step * mean), key=lambda i: -gaps[i])
            splits = []
            for i in worst[:self.batch_size]:
                a, b = ends[i], ends[i + 1]
                if self.node_at((a + b) / 2) is None:
                    splits.append(self.insertion((a + b) / 2, *self.between((a + b) / 2, parents=True), deep=b - a < 2 * min_width))
            if not splits or self.evaluations + self.cost(splits) > max_evaluations:
                break
            self.render(splits)
        assert best is not None
        chosen = best[1]
        return chosen, [self.node_at(u).image for u in chosen]


def adaptive_frames(tree: FrameTree, frames: int, max_step: float, easing: str = "linear",
                    max_nodes: int | None = None, counts: Sequence[int] | None = None,
                    budget: float = BUDGET) -> tuple[list[float], list[Image.Image], str]:
    """Grow ``tree`` until its steps are even within ``max_step`` (or a budget), then deliver ``frames``
    frames evenly spaced in perceptual distance (within each segment's ``counts`` gaps when keyframes are
    pinned to frames), re-placed on a denser tree while their own largest step exceeds ``max_step``.
    ``budget``: model evaluations per delivered frame, as a fraction of a full render, up to which the
    re-checks may spend (growth and the first delivery always complete; the default 1.0 keeps adaptive
    pacing no costlier than a uniform render). Returns positions, images and why
    growth stopped."""
    tree.planned = max_nodes if max_nodes is not None else frames
    tree.seed()
    limit = budget * frames * tree.full_render_evaluations
    min_width = 1.0 / (4 * max(frames - 1, 1))  # a quarter of a uniform frame step
    stop = tree.grow(max_step, max_nodes if max_nodes is not None else frames, min_width, min_nodes=frames // 2)
    positions, images = tree.deliver(frames, easing, counts, max_step=max_step, max_evaluations=limit, min_width=min_width)
    return positions, images, stop


class CountingCallback:
    """A step callback that counts model evaluations (items × denoiser calls) and forwards to ``inner``."""

    def __init__(self, inner: StepCallback | None = None):
        self.inner, self.count = inner, 0

    def __call__(self, state: StepState):
        self.count += state.latents.shape[0]
        return self.inner(state) if self.inner is not None else None


def full_render_evaluations(model: Family, settings: RenderSettings, width: int, height: int, img2img: bool) -> int:
    """Model evaluations of one frame rendered over the whole schedule (from img2img's first step)."""
    scheduler = make_scheduler(settings.sampler, model.scheduler_config, model.is_flow)
    timesteps = model.set_timesteps(scheduler, settings.steps, height, width)
    begin = start_index(settings.steps, settings.strength, scheduler.order) if img2img else 0
    return len(timesteps) - begin
