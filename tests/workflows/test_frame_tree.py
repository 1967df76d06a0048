"""The frame tree and adaptive pacing: exact keyframes, branches that reproduce their parent, a memory bound
that holds, and an adaptive morph on every family's tiny model."""

from __future__ import annotations

import numpy as np
import pytest

import latentscape
from latentscape.workflows.frame_tree import FrameTree, Insertion, adaptive_frames
from latentscape.workflows.generate import GenerateConfig, generate
from latentscape.workflows.morph import MorphConfig, check_config, morph
from latentscape.workflows.morph_render import RenderSettings, build_anchors
from latentscape.errors import LatentscapeError

STEPS = 6
KEYFRAMES = ("a red cat@5", "a dog in the snow@9", "city street at night@13")


@pytest.fixture(scope="module")
def sd(tiny_sd):
    return latentscape.load(str(tiny_sd))


def pixels(image) -> np.ndarray:
    return np.asarray(image).astype(np.int16)


def _tree(model, sampler, **kw):
    shape = model.latent_format.latent_shape(32, 32)
    anchors = build_anchors(model, ["a red cat", "a dog in the snow"], [5, 9], [6.0, 6.0], "", shape, 1.0)
    settings = RenderSettings(sampler, STEPS, 1.0, 0.0, 0.0, 0.75, "slerp", "lerp")
    return FrameTree(model, anchors, settings, "lab", img2img=False, closed=False, batch_size=4, **kw)


@pytest.mark.parametrize("sampler", ["euler", "euler_a"])
def test_keyframes_exact_under_adaptive_pacing(sd, sampler):
    out = morph(sd, MorphConfig(keyframes=KEYFRAMES, frames=9, steps=STEPS, sampler=sampler, cfg=6.0, pacing="adaptive",
                                batch_size=3))
    assert len(out.images) == 9 and out.positions[0] == 0.0 and out.positions[-1] == 2.0
    for k, (prompt, seed) in enumerate([("a red cat", 5), ("a dog in the snow", 9), ("city street at night", 13)]):
        ref = pixels(generate(sd, GenerateConfig(prompt=prompt, seed=seed, steps=STEPS, sampler=sampler, cfg=6.0)).images[0])
        got = pixels(out.images[out.keyframe_frames[k]])
        assert np.abs(ref - got).max() <= 1, f"keyframe {k}: {np.abs(ref - got).max()}"
    assert out.positions == sorted(out.positions) and len(set(out.positions)) == 9
    report = out.report
    assert report is not None and set(report.stats) == {"lab", "ssim"} and report.frames == 9
    assert 0 < report.model_evaluations and report.full_render_evaluations == STEPS


@pytest.mark.parametrize("sampler", ["euler", "euler_a"])
def test_a_branch_from_a_nodes_own_latents_reproduces_it(sd, sampler):
    tree = _tree(sd, sampler)
    tree.seed()
    key, other = tree.node_at(0.0), tree.node_at(1.0)
    for k in tree.branch_steps:
        assert k in key.latents
        again = tree.render([Insertion(0.0, k, key, other)], store=False)[0]  # s = 0: exactly the keyframe's latents
        assert np.abs(pixels(again.image) - pixels(key.image)).max() <= 1, f"branch at step {k}"
    # a branch costs only the remaining steps
    before = tree.evaluations
    tree.render([Insertion(0.25, tree.branch_steps[-1], key, tree.node_at(0.5))], store=False)
    assert tree.evaluations - before == STEPS - tree.branch_steps[-1]


def test_the_tree_never_exceeds_its_memory_bound(sd):
    tree = _tree(sd, "euler", max_stored_latents=7)
    stored = []
    render = tree.render

    def watched(*a, **kw):
        out = render(*a, **kw)
        stored.append(tree.stored_latents)
        return out

    tree.render = watched
    positions, images, _ = adaptive_frames(tree, 7, 1.2)
    assert len(images) == 7 and max(stored) <= 7 and tree.stored_latents <= 7
    assert any(not n.latents for n in tree.nodes)  # the bound was hit: later nodes keep no latents
    # with no room at all every frame is a full render, and nothing is stored
    empty = _tree(sd, "euler", max_stored_latents=0)
    adaptive_frames(empty, 5, 1.5)
    assert empty.stored_latents == 0 and all(n.start == 0 for n in empty.nodes)


@pytest.mark.parametrize("family", ["tiny_sd", "tiny_sd_v", "tiny_sdxl", "tiny_sd3", "tiny_flux"])
def test_every_family_renders_an_adaptive_five_frame_morph(family, request):
    model = latentscape.load(str(request.getfixturevalue(family)))
    out = morph(model, MorphConfig(keyframes=("a cat@1", "a dog@2"), frames=5, steps=4, pacing="adaptive", batch_size=4))
    assert len(out.images) == 5 and out.positions[0] == 0.0 and out.positions[-1] == 1.0
    assert out.report.model_evaluations > 0


@pytest.mark.parametrize("value", [1, 0.5, float("nan"), "abc", True])
def test_max_step_must_be_a_number_above_one(value):
    with pytest.raises(LatentscapeError, match="--max-step") as info:
        check_config(MorphConfig(keyframes=("a@1", "b@2"), pacing="adaptive", max_step=value))
    assert "\n" not in str(info.value)


def test_a_resumed_adaptive_render_is_identical(sd, tmp_path):
    """The tree is deterministic: interrupted while it grows, a resumed render delivers the same frames."""
    from latentscape.workflows.morph import render_morph

    class Stop(Exception):
        pass

    def stop(name, done, total):
        if name == "tree" and done >= 4:
            raise Stop

    config = MorphConfig(keyframes=KEYFRAMES[:2], frames=7, steps=STEPS, seed=1, batch_size=3, pacing="adaptive")
    full, part = tmp_path / "full.gif", tmp_path / "part.gif"
    render_morph(sd, config, full)
    with pytest.raises(Stop):
        render_morph(sd, config, part, progress=stop)
    assert not part.exists()
    render_morph(sd, config, part, resume=True)
    assert part.read_bytes() == full.read_bytes()


def test_adaptive_is_the_default_and_old_recipes_keep_uniform(sd):
    """Adaptive pacing won bench/bench_smoothness.py, so it is the default of the workflow, the CLI and the
    studio's form; a recipe written without a pacing (before it was) still replays uniform."""
    from pathlib import Path

    from latentscape.interfaces.cli import build_parser

    assert MorphConfig(keyframes=("a@1", "b@2")).pacing == "adaptive"
    assert build_parser().parse_args(["morph", "a", "b", "-o", "x.gif"]).pacing == "adaptive"
    page = (Path(latentscape.__file__).parent / "server" / "static" / "index.html").read_text()
    assert '<option value="adaptive" selected>' in page
    out = morph(sd, MorphConfig(keyframes=KEYFRAMES[:2], frames=4, steps=2, seed=3, batch_size=4))
    assert out.recipe.params["pacing"] == "adaptive"
    old = {k: v for k, v in out.recipe.params.items() if k != "pacing"}
    assert MorphConfig.from_params(old).pacing == "uniform"
    assert MorphConfig.from_params(dict(out.recipe.params)).pacing == "adaptive"


def test_a_morph_of_keyframes_only_grows_no_tree(sd):
    """Every frame on a keyframe: adaptive pacing renders just the keyframes (no midpoints to choose from)."""
    out = morph(sd, MorphConfig(keyframes=KEYFRAMES, frames=3, steps=STEPS, seed=1, batch_size=3))
    assert out.positions == [0.0, 1.0, 2.0] and out.report.model_evaluations == 3 * STEPS
