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

Delivery is a *selection*: the ``frames`` delivered frames are tree nodes, chosen by dynamic programming
over the nodes' actual pairwise distances so that the largest step over the mean step is smallest by the
pacing's distance and by the structural one (1 − SSIM) at once (keyframes always chosen; pinned keyframes
at their frame numbers). Nothing is rendered at a position whose distances would then surprise: while the
best selection's ratio is above ``max_step`` (and the evaluation budget allows), the tree's gaps that look
largest against the selection's mean step are split and the frames chosen again. A gap narrower than the
tree's bisection limit is branched as deep as its parents allow: a jump that bisection cannot split is a
cut in the full renders' trajectory, and a deep branch from the latents on both sides of it crosses it
gradually.

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
from latentscape.core.pacing import allocate, select_frames
from latentscape.core.paths import ease, interval_count, locate, segment_count
from latentscape.models.family import Family
from latentscape.samplers import make_scheduler
from latentscape.sampling import StepCallback, StepState, start_index
from latentscape.workflows.common import decode_images
from latentscape.workflows.morph_pacing import STRUCTURAL, pair_distances
from latentscape.workflows.morph_render import Anchors, RenderSettings, render_latents

BRANCH_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)  # of the schedule: where branches may start
DEPTH = 0.8  # the deepest start, as a fraction of the steps, for neighbours that look alike
MAX_STORED_LATENTS = 256
BUDGET = 0.8  # model evaluations per delivered frame, as a fraction of a full render, growth may spend

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
        self.metrics = [metric] + ([STRUCTURAL] if metric != STRUCTURAL else [])  # what selection evens out
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
        self._distances: dict[tuple[str, float, float], float] = {}

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

    def distances(self, pairs: Sequence[tuple[Node, Node]], metric: str | None = None) -> list[float]:
        """Distances of node pairs by ``metric`` (default: the pacing's), cached by their positions."""
        metric = metric or self.metric
        todo = [(a, b) for a, b in pairs if (metric, a.u, b.u) not in self._distances]
        for (a, b), d in zip(todo, pair_distances([(a.image, b.image) for a, b in todo], metric)):
            self._distances[(metric, a.u, b.u)] = d
        return [self._distances[(metric, a.u, b.u)] for a, b in pairs]

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
        """The keyframes in full (exact) and, in the same batches, each segment's midpoint (a full render
        too: it differs from both keyframes as much as they differ from each other, so no branch of theirs
        would be shallow enough)."""
        self.render([Insertion(float(k), self.first) for k in range(self.n_keyframes)]
                    + [Insertion(k + 0.5, self.first) for k in range(self.segments)])
        self.full_render_evaluations = self.evaluations // (self.n_keyframes + self.segments)

    def _matrices(self, nodes: Sequence[Node], window: int) -> list[np.ndarray]:
        """(M, M) distances between nodes at most ``window`` apart in path order (inf beyond), by the
        pacing's distance and by the structural one."""
        m = len(nodes)
        pairs = [(i, j) for i in range(m) for j in range(i + 1, min(m, i + window + 1))]
        out = []
        for metric in self.metrics:
            d = np.full((m, m), np.inf)
            for (i, j), v in zip(pairs, self.distances([(nodes[i], nodes[j]) for i, j in pairs], metric)):
                d[i, j] = v
            out.append(d)
        return out

    def select(self, frames: int, easing: str = "linear", counts: Sequence[int] | None = None) -> Selection:
        """Choose ``frames`` of the tree's nodes whose steps are as even as possible by both distances
        (:func:`~latentscape.core.pacing.select_frames` over the nodes' actual pairwise distances):
        keyframes always chosen, at their frame numbers where ``counts`` pins them; with an easing, each
        segment's steps follow its local speed (segments sharing the frames by their length as
        :func:`~latentscape.core.pacing.allocate` does)."""
        nodes = self.path_nodes()
        points = frames + (1 if self.closed else 0)  # a closed path ends on keyframe 0 again
        keys = [i for i, n in enumerate(nodes) if float(n.u).is_integer()]
        if counts is None and easing != "linear":
            counts = allocate(self._keyframe_lengths(nodes, keys), interval_count(frames, self.closed))
        slots = weights = None
        if counts is not None:
            starts = np.concatenate([[0], np.cumsum(counts)])
            slots = {i: int(starts[k]) for k, i in enumerate(keys)}
            weights = [ease((j + 1) / c, easing) - ease(j / c, easing) for c in counts for j in range(c)]
        # pairs measured: those a few mean strides apart (each segment's own stride where its gaps are fixed)
        window = max(4, 3 * int(np.ceil((len(nodes) - 1) / max(points - 1, 1))))
        if counts is not None:
            ends = keys + ([len(nodes) - 1] if self.closed else [])
            window = max([window] + [3 * int(np.ceil((b - a) / c)) for a, b, c in zip(ends, ends[1:], counts)])
        chosen, ratio = select_frames(self._matrices(nodes, window), points, forced=keys, slots=slots, weights=weights)
        positions = [nodes[i].u for i in chosen][:frames]
        return Selection(positions, ratio, [(nodes[a], nodes[b]) for a, b in zip(chosen, chosen[1:])])

    def together(self, insertions: Sequence[Insertion]) -> list[Insertion]:
        """The same insertions with the branches deeper than their median start moved up to it where their
        parents allow: one batch for most instead of one per start step (a small batch costs nearly as much
        time as a full one on a CPU); the shallower ones keep their start (a wide gap needs it)."""
        branches = [ins for ins in insertions if ins.left is not None]
        if not branches:
            return list(insertions)
        common = sorted(ins.start for ins in branches)[len(branches) // 2]  # the median: deeper ones join it
        out = []
        for ins in insertions:
            if (ins.left is not None and ins.start > common and common >= max(ins.left.start, ins.right.start)
                    and common in ins.left.latents and common in ins.right.latents):
                ins = Insertion(ins.u, common, ins.left, ins.right)
            out.append(ins)
        return out

    def short_segments(self, frames: int, counts: Sequence[int] | None = None) -> dict[int, int]:
        """Segments holding too few nodes for a selection of ``frames`` (each pinned segment its ``counts``
        gaps; otherwise the path as many nodes as frames), and how many nodes each lacks."""
        nodes = self.path_nodes()
        if counts is None:
            missing = frames + (1 if self.closed else 0) - len(nodes)
            return {k: missing for k in range(self.segments)} if missing > 0 else {}
        have = [sum(1 for n in nodes if k < n.u < k + 1) for k in range(self.segments)]
        return {k: c - 1 - h for k, (c, h) in enumerate(zip(counts, have)) if h < c - 1}

    def _keyframe_lengths(self, nodes: Sequence[Node], keys: Sequence[int]) -> list[float]:
        gaps = self.distances(list(zip(nodes, nodes[1:])))
        return [float(sum(gaps[a:b])) for a, b in zip(keys, keys[1:])]

    def splits(self, selection: Selection, wanted: int, min_width: float, segments: set[int] | None = None) -> list[Insertion]:
        """Where to grow next: the tree's adjacent gaps that look largest relative to the selection's mean
        steps (the worse of both distances), those above a mean step or within half the largest one,
        ``wanted`` frames at most.
        A gap is split at its midpoint; a gap narrower than ``2·min_width`` (a jump that survived bisection
        down to there: a cut in the full renders' trajectory) is crossed instead by as many branches as it
        is mean steps wide, evenly spaced and as deep as the parents allow, from the latents on both sides
        (latentblending's way: the mix of two late latents changes gradually). Gaps narrower than a float's
        resolution are not split; ``segments``: only gaps within these segments."""
        nodes = self.path_nodes()
        adjacent = list(zip(nodes, nodes[1:]))
        scale = [max(float(np.mean(self.distances(selection.steps, m))), 1e-12) for m in self.metrics]
        size = np.maximum.reduce([np.asarray(self.distances(adjacent, m)) / s for m, s in zip(self.metrics, scale)])
        out: list[Insertion] = []
        for i in np.argsort(-size, kind="stable"):
            a, b = adjacent[i]
            if b.u - a.u < 1e-6 or size[i] <= 0 or (out and size[i] < min(0.5 * size.max(), 1.0)):
                continue
            if segments is not None and int(np.floor(a.u)) not in segments:
                continue
            deep = b.u - a.u < 2 * min_width
            pieces = min(int(np.ceil(size[i])), wanted - len(out) + 1, 8) if deep else 2
            for p in range(1, max(pieces, 2)):
                u = a.u + (b.u - a.u) * p / max(pieces, 2)
                out.append(self.insertion(u, *self.between(u, parents=True), deep=deep))
            if len(out) >= wanted:
                break
        return out[:wanted]


@dataclass(frozen=True)
class Selection:
    positions: list[float]  # the chosen nodes' path positions, in order
    ratio: float  # their largest step over the mean step, the worse of both distances
    steps: list[tuple[Node, Node]]  # the chosen steps (closed paths: back to keyframe 0 too)


def adaptive_frames(tree: FrameTree, frames: int, max_step: float, easing: str = "linear",
                    max_nodes: int | None = None, counts: Sequence[int] | None = None,
                    budget: float = BUDGET) -> tuple[list[float], list[Image.Image], str]:
    """Grow ``tree`` and deliver ``frames`` of its nodes whose steps are even within ``max_step`` by the
    pacing's distance and the structural one (see :meth:`FrameTree.select`; within each segment's
    ``counts`` gaps when keyframes are pinned to frames). Growth first renders as many nodes as frames
    (always, so there is something to deliver), then, while the best selection's largest step exceeds
    ``max_step`` times its mean, splits the tree's largest gaps (``batch_size`` at a time) as long as
    the model evaluations stay within ``budget`` full renders per delivered frame (and the tree within
    ``max_nodes`` nodes). Every delivered frame is a node: nothing is rendered at a position whose
    distances are not known. Returns positions, images and why growth stopped ("even", "budget",
    "node budget" or "cut": no gap left to split)."""
    cap = max_nodes if max_nodes is not None else 4 * frames
    tree.planned = 2 * frames
    tree.seed()
    limit = budget * frames * tree.full_render_evaluations
    min_width = 1.0 / (4 * max(frames - 1, 1))  # a quarter of a uniform frame step
    while short := tree.short_segments(frames, counts):  # enough nodes to choose from, whatever the budget
        todo = tree.together(tree.splits(_even(tree), min(sum(short.values()), tree.batch_size), min_width, set(short)))
        if not todo:
            raise ValueError(f"the tree cannot grow to {frames} distinct nodes")
        tree.render(todo)
    while True:
        selection = tree.select(frames, easing, counts)
        if selection.ratio <= max_step:
            stop = "even"
            break
        if len(tree.nodes) >= cap:
            stop = "node budget"
            break
        todo, spent = [], tree.evaluations
        for ins in tree.together(tree.splits(selection, min(tree.batch_size, cap - len(tree.nodes)), min_width)):
            if spent + tree.cost([ins]) <= limit:
                todo.append(ins)
                spent += tree.cost([ins])
        if not todo:
            stop = "budget" if tree.splits(selection, 1, min_width) else "cut"
            break
        tree.render(todo)
    return selection.positions, [tree.node_at(u).image for u in selection.positions], stop


def _even(tree: FrameTree) -> Selection:
    """The tree's own adjacent steps as a stand-in selection (for sizing gaps before there is one)."""
    nodes = tree.path_nodes()
    return Selection([n.u for n in nodes], float("inf"), list(zip(nodes, nodes[1:])))


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
