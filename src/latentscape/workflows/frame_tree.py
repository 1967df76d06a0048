"""A shared-trajectory frame tree: in-between frames that start part-way through the schedule.

After latentblending's tree of branches: every frame of the tree is a *node* at a path position ``u``. The
keyframes are rendered in full (so they stay exactly their standalone ``generate``) and keep their latents
at the steps a branch may start from. A new frame at ``u`` between nodes L and R starts at step k from
``interpolate(L.latents[k], R.latents[k], s)`` (``s`` its place between them, ``interpolation`` as for the
noise: slerp by default) with its own conditioning, CFG and step noise interpolated at ``u`` exactly as a
full render of ``u`` has them, so it costs (N − k)/N of a full render. The wanted k of an insertion comes
from how far apart L and R are in mean steps of the delivery to come (``gap``, the worse of both distances):
``k ≈ depth·(1/gap)^¼·N``, snapped down to the tree's branch steps — deep where neighbours are about one
frame step apart, shallower the more frame steps lie between them. The parents are the nearest nodes on
either side holding latents at k (every node holds them from its own start on); where there are none, the
frame is rendered in full instead.

Growth goes in rounds, each one batch (``batch_size`` frames) started at one step: on this CPU a denoiser
call costs about as much for one frame as for eight, so many small batches, not many frames, are what makes
a tree slow. A round gives its frames one at a time to the gap whose pieces are widest (at most
``MAX_PIECES`` pieces per gap and round, so the gaps are measured again before finer cuts) and starts them at
the median of their wanted steps, never shallower than the round before (the tree refines deeper, as
latentblending's does). A gap narrower than the tree's bisection limit (a quarter of a uniform frame step)
is a cut in the full renders' trajectory: the model flips there even from late latents, so it is crossed by
branches from ``CUT_DEPTH`` (0.95) of the schedule — in effect a cross-fade of the latents on both sides,
finished by the last step. Growth stops when the delivered steps are even within ``max_step``, or at the
budgets: model evaluations (``BUDGET`` full renders per delivered frame) and estimated time (``WALL`` times a
uniform render of the same frames at the same batch size, by a cost model of calls, items, decodes,
distances and rounds: see ``CALL_COST``).

Delivery is a *selection*: the ``frames`` delivered frames are tree nodes, chosen by dynamic programming
over the nodes' actual pairwise distances so that the largest step over the mean step is smallest by the
pacing's distance and by the structural one (1 − SSIM) at once (keyframes always chosen; pinned keyframes
at their frame numbers). Nothing is rendered at a position whose distances would then surprise: every
delivered frame was measured against its neighbours before it was chosen. The distances come from each
node's image features (CIELAB and SSIM pyramids, computed once per node within ``FEATURE_BYTES``).

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
from latentscape.workflows.morph_pacing import FEATURES, STRUCTURAL, feature_distances, image_features, pair_distances
from latentscape.workflows.morph_render import Anchors, RenderSettings, render_latents

BRANCH_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)  # of the schedule: where branches may start
DEPTH = 0.8  # the deepest start, as a fraction of the steps, for neighbours that look alike
DEPTH_POWER = 0.25  # how fast the start gets shallower as neighbours differ more (see wanted_start)
CUT_DEPTH = 0.95  # the start of branches across a cut (a jump bisection could not split): in effect a
# cross-fade of the latents on both sides, finished by the last step(s)
MAX_STORED_LATENTS = 256
FEATURE_BYTES = 256 << 20  # the nodes' image features (CIELAB / SSIM pyramids) kept for measuring pairs
BUDGET = 0.8  # model evaluations per delivered frame, as a fraction of a full render, growth may spend
WALL = 1.2  # estimated time growth may spend, as a fraction of a uniform render's (same frames, same batch size)
# The time model, in per-item evaluations (measured on the embedded model, 2 CPU cores: a denoiser call takes
# ~52 ms + 9.5 ms per item (CFG pair), decoding a frame ~55 ms, measuring a new node against its neighbours
# ~20 ms, choosing frames once ~0.15 s): a small batch costs nearly what a full one does.
CALL_COST = 5.5  # a denoiser call's fixed cost
NODE_COST = 8.0  # a rendered frame's decode and its distances to the nodes near it
ROUND_COST = 15.0  # choosing the frames again after a round of growth
MAX_PIECES = 3  # a round smaller than the delivery cuts one gap into at most this many pieces (past what the
# short tree needs; a cut into as many as it is wide), so gaps are measured again before finer cuts and growth
# follows where the path turns out to change. 24-pair bench (batch 8): pair 11 1.75 / 1.92 unlimited, 1.63 /
# 1.59 at 3; rounds as large as the delivery (the CLI's batch 24) measured better unlimited (main job 1.46 /
# 1.50 vs 2.08 / 2.56 at 3).
SPLIT_BELOW = 0.75  # gaps whose pieces are this many mean steps wide or less are not split further

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
        self.time_spent = 0.0  # estimated, in per-item evaluations (see time_cost)
        self.last_start = 0  # the deepest start step a round of branches has used so far
        self.full_render_evaluations = 0  # measured on the keyframes' renders (heun: 2N - 1 evaluations)
        self.planned = 0  # frames the progress bar counts to
        self._distances: dict[tuple[str, float, float], float] = {}
        self._features: dict[tuple[str, float], object] = {}  # (metric, u) -> the node image's features
        self._feature_bytes = 0

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

    def distances(self, pairs: Sequence[tuple[Node, Node]], metric: str | None = None) -> list[float]:
        """Distances of node pairs by ``metric`` (default: the pacing's), cached by their positions."""
        metric = metric or self.metric
        todo = [(a, b) for a, b in pairs if (metric, a.u, b.u) not in self._distances]
        if metric in FEATURES:  # each node's image converted once, however many pairs it is in
            values = feature_distances([(self._feature(a, metric), self._feature(b, metric)) for a, b in todo], metric)
        else:
            values = pair_distances([(a.image, b.image) for a, b in todo], metric)
        for (a, b), d in zip(todo, values):
            self._distances[(metric, a.u, b.u)] = d
        return [self._distances[(metric, a.u, b.u)] for a, b in pairs]

    def _feature(self, node: Node, metric: str):
        """A node's image features by ``metric``, kept while they fit ``FEATURE_BYTES`` (else recomputed)."""
        key = (metric, node.u)
        if key in self._features:
            return self._features[key]
        features = image_features(node.image, metric)
        size = sum(t.numel() * t.element_size() for t in _tensors(features))
        if self._feature_bytes + size <= FEATURE_BYTES:
            self._features[key] = features
            self._feature_bytes += size
        return features

    # --- choosing where a branch starts ----------------------------------------------------------------
    def wanted_start(self, gap: float, deep: bool = False) -> int:
        """The step a frame between two nodes ``gap`` mean steps apart would start from: deep (``depth`` of
        the schedule) where they are one mean step apart or less, shallower as the gap widens
        (``depth·(1/gap)^¼``), snapped down to a branch step; ``deep`` (across a cut): ``CUT_DEPTH``."""
        closeness = 1.0 if gap <= 1.0 else 1.0 / gap
        depth = max(self.depth, CUT_DEPTH) if deep else self.depth * closeness**DEPTH_POWER
        wanted = self.first + depth * (self.settings.steps - self.first)
        usable = [s for s in self.branch_steps if s <= wanted]
        return max(usable) if usable else self.first

    def parents_at(self, u: float, step: int) -> tuple[Node, Node] | None:
        """The nearest nodes either side of ``u`` that hold latents at ``step`` (None where a side has none)."""
        nodes = self.path_nodes()
        i = int(np.searchsorted([n.u for n in nodes], u, side="right"))
        left = next((n for n in reversed(nodes[:i]) if step in n.latents and n.u < u), None)
        right = next((n for n in nodes[i:] if step in n.latents and n.u > u), None)
        return (left, right) if left is not None and right is not None else None

    def at_step(self, u: float, step: int) -> Insertion:
        """A frame at ``u`` branched at ``step`` from the nearest nodes holding latents there; a full render
        where there are none (the memory bound, or a step shallower than every branch step)."""
        parents = self.parents_at(u, step) if step > self.first else None
        return Insertion(u, step, *parents) if parents is not None else Insertion(u, self.first)

    def lane_calls(self, start: int) -> float:
        """Denoiser calls of one batch started at ``start`` (a full render's calls, per remaining step)."""
        span = self.settings.steps - self.first
        return self.full_render_evaluations * (self.settings.steps - start) / span

    def cost(self, insertions: Sequence[Insertion]) -> float:
        """Model evaluations the insertions will take (a full render's share per remaining step)."""
        return sum(self.lane_calls(ins.start) for ins in insertions)

    def time_cost(self, insertions: Sequence[Insertion]) -> float:
        """Estimated time of rendering the insertions, in per-item evaluations: each batch's calls cost
        ``CALL_COST`` plus one per item (grouped by start step and ``batch_size`` as :meth:`render` does),
        each frame ``NODE_COST`` (its decode and distances), and the round ``ROUND_COST``."""
        total = NODE_COST * len(insertions) + (ROUND_COST if insertions else 0.0)
        for start in {ins.start for ins in insertions}:
            n = sum(1 for ins in insertions if ins.start == start)
            for c in range(0, n, self.batch_size):
                total += self.lane_calls(start) * (CALL_COST + min(self.batch_size, n - c))
        return total

    # --- rendering -------------------------------------------------------------------------------------
    def render(self, insertions: Sequence[Insertion], *, store: bool = True, stage: str = "tree") -> list[Node]:
        """Render the insertions (grouped by start step, ``batch_size`` at a time); ``store`` keeps them in
        the tree with their latents at the branch steps. Returns the new nodes in the given order."""
        self.time_spent += self.time_cost(insertions)
        self.last_start = max([self.last_start] + [ins.start for ins in insertions if ins.left is not None])
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
        seed = ([Insertion(float(k), self.first) for k in range(self.n_keyframes)]
                + [Insertion(k + 0.5, self.first) for k in range(self.segments)])
        self.render(seed)
        self.full_render_evaluations = self.evaluations // len(seed)
        self.time_spent = self.time_cost(seed)  # now that a full render's calls are known

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

    def next_round(self, frames: int, wanted: int, min_width: float, segments: set[int] | None = None,
                   need: int = 1, deeper: int = 0) -> list[Insertion]:
        """The next batch of frames to grow: up to ``wanted`` of them, all started at one step.

        The tree's adjacent gaps are measured in mean steps of a delivery of ``frames`` frames (each
        distance's path length over the frames' gaps; the worse distance counts). Frames go one at a time
        to the gap whose pieces are still widest (a gap given p frames is cut into p + 1 even pieces; at
        most ``MAX_PIECES`` pieces per round when the batch is smaller than the delivery), while its pieces
        are wider than ``SPLIT_BELOW`` mean steps (the first ``need`` frames whatever their width). A gap
        narrower than ``2·min_width`` (a jump that survived bisection down to there: a cut in the full
        renders' trajectory) takes as many pieces as it is wide and wants ``CUT_DEPTH`` (latentblending's
        way: the mix of two late latents changes gradually). Each frame would start at
        :meth:`wanted_start` of its gap; the batch starts at their median, never shallower than the round
        before, since a batch of frames costs little more time than one frame (the frames' parents: the
        nearest nodes holding latents at that step). ``segments``: only gaps within
        these segments; ``deeper``: start that many branch steps deeper (a round that must fit a budget).
        Returns the insertions, widest pieces first."""
        nodes = self.path_nodes()
        adjacent = list(zip(nodes, nodes[1:]))
        if not adjacent:
            return []
        points = interval_count(frames, self.closed)
        size = np.zeros(len(adjacent))
        for m in self.metrics:
            d = np.asarray(self.distances(adjacent, m))
            size = np.maximum(size, d / max(float(d.sum()) / points, 1e-12))
        open_ = [i for i, (a, b) in enumerate(adjacent) if b.u - a.u >= 1e-6 and size[i] > 0
                 and (segments is None or int(np.floor(a.u)) in segments)]
        pieces = dict.fromkeys(open_, 1)  # a gap given p − 1 frames is cut into p pieces
        cut = {i: self._is_cut(adjacent[i], min_width) for i in open_}  # crossed by many branches at once
        most = MAX_PIECES if self.batch_size < frames else len(nodes) + wanted  # a round as big as the delivery may spread
        given = 0
        while given < wanted:
            live = [j for j in pieces if adjacent[j][1].u - adjacent[j][0].u >= 1e-6 * (pieces[j] + 1)
                    and (given < need or pieces[j] < most or cut[j])]
            if not live:
                break
            i = max(live, key=lambda j: (size[j] / pieces[j], -j))
            if given >= need and size[i] / pieces[i] <= SPLIT_BELOW:
                break
            pieces[i] += 1
            given += 1
        gaps = [i for i in pieces if pieces[i] > 1]
        if not gaps:
            return []
        starts = sorted(s for i in gaps for s in [self.wanted_start(size[i], cut[i])] * (pieces[i] - 1))
        start = max(starts[len(starts) // 2], self.last_start)  # a tree refines deeper, never shallower
        if deeper:
            later = [s for s in self.branch_steps if s > start]
            if len(later) < deeper:
                return []
            start = later[deeper - 1]
        out = []
        for i in sorted(gaps, key=lambda j: -size[j]):
            a, b = adjacent[i]
            out += [self.at_step(a.u + (b.u - a.u) * q / pieces[i], start) for q in range(1, pieces[i])]
        return out[:wanted]

    @staticmethod
    def _is_cut(gap: tuple[Node, Node], min_width: float) -> bool:
        return gap[1].u - gap[0].u < 2 * min_width


@dataclass(frozen=True)
class Selection:
    positions: list[float]  # the chosen nodes' path positions, in order
    ratio: float  # their largest step over the mean step, the worse of both distances
    steps: list[tuple[Node, Node]]  # the chosen steps (closed paths: back to keyframe 0 too)


def adaptive_frames(tree: FrameTree, frames: int, max_step: float, easing: str = "linear",
                    max_nodes: int | None = None, counts: Sequence[int] | None = None,
                    budget: float = BUDGET, wall: float = WALL) -> tuple[list[float], list[Image.Image], str]:
    """Grow ``tree`` and deliver ``frames`` of its nodes whose steps are even within ``max_step`` by the
    pacing's distance and the structural one (see :meth:`FrameTree.select`; within each segment's
    ``counts`` gaps when keyframes are pinned to frames). Growth renders batches of frames
    (:meth:`FrameTree.next_round`): first as many nodes as frames (always, so there is something to
    deliver), then, while the best selection's largest step exceeds ``max_step`` times its mean, more
    where the gaps are widest, as long as the model evaluations stay within ``budget`` full renders per
    delivered frame, the estimated time within ``wall`` times a uniform render's of the same frames at the
    same batch size (:meth:`FrameTree.time_cost`), and the tree within ``max_nodes`` nodes. Every
    delivered frame is a node: nothing is rendered at a position whose distances are not known. Returns
    positions, images and why growth stopped ("even", "budget", "node budget" or "cut": no gap left to
    split)."""
    cap = max_nodes if max_nodes is not None else 4 * frames
    tree.planned = 2 * frames
    tree.seed()
    limit = budget * frames * tree.full_render_evaluations
    uniform = tree.time_cost([Insertion(i / max(frames - 1, 1), tree.first) for i in range(frames)])
    time_limit = wall * uniform
    min_width = 1.0 / (4 * max(frames - 1, 1))  # a quarter of a uniform frame step
    while True:
        short = tree.short_segments(frames, counts)  # too few nodes to choose from: grow, whatever the budget
        if not short:
            selection = tree.select(frames, easing, counts)
            if selection.ratio <= max_step:
                stop = "even"
                break
            if len(tree.nodes) >= cap:
                stop = "node budget"
                break
        need = min(sum(short.values()), tree.batch_size)
        wanted = max(need, min(tree.batch_size, cap - len(tree.nodes)))
        todo = _fitting_round(tree, frames, wanted, min_width, limit, time_limit, set(short) if short else None, need)
        if len(todo) < need:
            raise ValueError(f"the tree cannot grow to {frames} distinct nodes")
        if not todo:
            stop = "budget" if tree.next_round(frames, 1, min_width) else "cut"
            break
        tree.render(todo)
    return selection.positions, [tree.node_at(u).image for u in selection.positions], stop


def _fitting_round(tree: FrameTree, frames: int, wanted: int, min_width: float, limit: float, time_limit: float,
                   segments: set[int] | None = None, need: int = 0) -> list[Insertion]:
    """The next round that fits both budgets (the evaluations within ``limit``, the estimated time within
    ``time_limit``): as many frames as ``wanted`` allows, started deeper where that is what fits; at least
    ``need`` frames (at the deepest start when nothing fits: they are needed whatever they cost)."""
    deepest: list[Insertion] = []
    for n in range(wanted, 0, -1):
        for deeper in range(len(tree.branch_steps) + 1):
            todo = tree.next_round(frames, n, min_width, segments, max(need, 1), deeper)
            if not todo:
                break
            if n >= need:
                deepest = todo
            if tree.evaluations + tree.cost(todo) <= limit and tree.time_spent + tree.time_cost(todo) <= time_limit:
                return todo if len(todo) >= need else deepest
        if n <= need:
            return deepest
    return deepest if need else []


def _tensors(tree) -> list[torch.Tensor]:
    return [tree] if isinstance(tree, torch.Tensor) else [t for item in tree for t in _tensors(item)]


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
