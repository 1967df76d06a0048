"""Frame-pinned keyframes and value schedules in morph: pins exact at their frames under every pacing,
schedules evaluated at frames, seed behaviours, recipes that replay them, and one-sentence refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

import latentscape
from latentscape.errors import LatentscapeError
from latentscape.io.recipe import save_png
from latentscape.workflows.generate import GenerateConfig, generate
from latentscape.workflows.keyframes import Keyframe, load_keyframe_document
from latentscape.workflows.morph import MorphConfig, check_config, morph
from test_morph import STEPS, pixels, standalone  # the same references as the endpoint tests


@pytest.fixture(scope="module")
def sd(tiny_sd):
    return latentscape.load(str(tiny_sd))


def pinned(*items) -> tuple[Keyframe, ...]:
    return tuple(Keyframe(prompt=p, seed=s, frame=f) for p, s, f in items)


PINNED = pinned(("a red cat", 5, 0), ("a dog in the snow", 9, 2), ("city street at night", 13, 7))


# --- pins ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pacing", ["uniform", "perceptual", "adaptive"])
def test_pinned_keyframes_land_on_their_frames_and_equal_standalone_generate(sd, pacing):
    out = morph(sd, MorphConfig(keyframes=PINNED, steps=STEPS, cfg=6.0, batch_size=3, pacing=pacing))
    assert len(out.images) == 8 and out.keyframe_frames == [0, 2, 7]
    assert out.recipe.params["frames"] == 8  # derived from the last pin
    for kf in PINNED:
        ref = standalone(sd, kf.prompt, kf.seed, cfg=6.0)
        got = pixels(out.images[kf.frame])
        assert np.abs(ref - got).max() <= 1, f"frame {kf.frame}: max pixel difference {np.abs(ref - got).max()}"
    # frames between pins stay in their segment: 1 frame in segment 0, 4 in segment 1
    assert 0 < out.positions[1] < 1 and all(1 < u < 2 for u in out.positions[3:7])
    if pacing == "uniform":
        assert out.positions == [0.0, 0.5, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0]


def test_pins_in_a_closed_loop(sd):
    kfs = pinned(("a red cat", 5, 0), ("a dog in the snow", 9, 2))
    out = morph(sd, MorphConfig(keyframes=kfs, frames=6, steps=STEPS, closed=True, batch_size=6))
    assert out.keyframe_frames == [0, 2] and out.positions == [0.0, 0.5, 1.0, 1.25, 1.5, 1.75]
    assert np.abs(standalone(sd, "a dog in the snow", 9) - pixels(out.images[2])).max() <= 1


# --- schedules -----------------------------------------------------------------------------------------
def test_cfg_schedule_is_evaluated_at_every_frame_and_pinned_frames_use_their_value(sd):
    kfs = pinned(("a red cat", 5, 0), ("a dog in the snow", 9, 6))
    config = MorphConfig(keyframes=kfs, steps=STEPS, batch_size=7, schedules={"cfg": "0:(3), 2:(9), 6:(5)"},
                         pacing="uniform")  # frames on whole frame numbers (adaptive ones take their place's values)
    out = morph(sd, config)
    cfgs = [v["cfg"] for v in out.frame_values]
    assert [v["frame"] for v in out.frame_values] == list(range(7))
    assert cfgs == pytest.approx([3, 6, 9, 8, 7, 6, 5])
    assert np.abs(standalone(sd, "a red cat", 5, cfg=3.0) - pixels(out.images[0])).max() <= 1
    assert np.abs(standalone(sd, "a dog in the snow", 9, cfg=5.0) - pixels(out.images[6])).max() <= 1
    # the schedule changes the in-between frames: compare with a constant CFG
    flat = morph(sd, MorphConfig(keyframes=kfs, steps=STEPS, batch_size=7, schedules={"cfg": "0:(3), 6:(5)"}, pacing="uniform"))
    assert np.array_equal(pixels(flat.images[0]), pixels(out.images[0]))
    assert np.abs(pixels(flat.images[2]) - pixels(out.images[2])).max() > 0
    assert out.recipe.params["schedules"] == {"cfg": "0:(3), 2:(9), 6:(5)"}
    assert out.recipe.infotext_extra["CFG schedule"] == "0 -> 3 | 2 -> 9 | 6 -> 5"
    assert out.recipe.infotext_extra["Keyframe frames"] == "0 | 6"


def test_a_constant_schedule_equals_the_plain_setting(sd):
    kfs = ("a red cat@5", "a dog in the snow@9")
    plain = morph(sd, MorphConfig(keyframes=kfs, frames=4, steps=STEPS, cfg=7.0, guidance_rescale=0.5, batch_size=4))
    scheduled = morph(sd, MorphConfig(keyframes=kfs, frames=4, steps=STEPS, batch_size=4,
                                      schedules={"cfg": 7.0, "guidance_rescale": {"0": 0.5}}))
    for a, b in zip(plain.images, scheduled.images):
        assert np.abs(pixels(a) - pixels(b)).max() <= 1
    assert "schedules" not in plain.recipe.params and "seed_behavior" not in plain.recipe.params  # plain recipes unchanged


def test_guidance_rescale_schedule_on_pinned_frames(sd):
    kfs = pinned(("a red cat", 5, 0), ("a dog in the snow", 9, 4))
    out = morph(sd, MorphConfig(keyframes=kfs, steps=STEPS, cfg=8.0, batch_size=5, schedules={"guidance_rescale": "0:(0.7), 4:(0)"}))
    assert [v["guidance_rescale"] for v in out.frame_values] == pytest.approx([0.7, 0.525, 0.35, 0.175, 0.0])
    assert np.abs(standalone(sd, "a red cat", 5, cfg=8.0, guidance_rescale=0.7) - pixels(out.images[0])).max() <= 1
    assert np.abs(standalone(sd, "a dog in the snow", 9, cfg=8.0) - pixels(out.images[4])).max() <= 1


def test_strength_schedule_on_image_keyframes(sd, tmp_path):
    paths = []
    for prompt, seed in (("a red cat", 1), ("the sea and the sky", 2)):
        im = generate(sd, GenerateConfig(prompt=prompt, seed=seed, steps=STEPS)).images[0]
        paths.append(str(save_png(im, tmp_path / f"{seed}.png", None)))
    kfs = (Keyframe(image=paths[0], prompt="a cat", seed=3, frame=0), Keyframe(image=paths[1], prompt="a sea", seed=4, frame=3))
    out = morph(sd, MorphConfig(keyframes=kfs, steps=4, batch_size=4, schedules={"strength": "0:(0.5), 3:(0.75)"}, image_mode="noise",
                                pacing="uniform"))
    assert [v["strength"] for v in out.frame_values] == pytest.approx([0.5, 0.5833333, 0.6666667, 0.75])
    for kf, strength in ((kfs[0], 0.5), (kfs[1], 0.75)):
        ref = generate(sd, GenerateConfig(prompt=kf.prompt, seed=kf.seed, steps=4, init_image=kf.image, strength=strength))
        assert np.abs(pixels(ref.images[0]) - pixels(out.images[kf.frame])).max() <= 1


# --- seed behaviours -----------------------------------------------------------------------------------
def test_seed_behaviours_set_the_seeds_of_keyframes_without_one(sd):
    kfs = ("a red cat", "a dog in the snow", "seed:40")
    seeds = lambda out: [k["seed"] for k in out.recipe.params["keyframes"]]  # noqa: E731
    base = dict(keyframes=kfs, frames=3, steps=1, seed=7, batch_size=3)
    assert seeds(morph(sd, MorphConfig(**base))) == [7, 7, 40]
    it = morph(sd, MorphConfig(**base, seed_behavior="iter"))
    assert seeds(it) == [7, 8, 40] and it.recipe.params["seed_behavior"] == "iter"
    drawn = seeds(morph(sd, MorphConfig(**base, seed_behavior="random")))
    assert drawn[2] == 40 and all(isinstance(s, int) and s >= 0 for s in drawn) and drawn[0] != drawn[1]
    sched = morph(sd, MorphConfig(keyframes=kfs[:2], frames=5, steps=STEPS, batch_size=5, seed_behavior="schedule",
                                  schedules={"seed": "0:(11), 4:(12)"}))
    assert seeds(sched) == [11, 12]
    assert np.abs(standalone(sd, "a dog in the snow", 12) - pixels(sched.images[4])).max() <= 1
    # the recipe replays: its keyframes carry the scheduled seeds, which agree with the schedule
    again = MorphConfig.from_params(sched.recipe.params)
    assert again.seed_behavior == "schedule" and check_config(again).keyframes[1].seed == 12


def test_recipe_records_pins_and_schedules_and_rebuilds_the_same_config(sd):
    config = MorphConfig(keyframes=PINNED, steps=1, batch_size=8, schedules={"cfg": {"0": 4, "7": 8}})
    out = morph(sd, config)
    params = json.loads(json.dumps(out.recipe.params))
    assert [k["frame"] for k in params["keyframes"]] == [0, 2, 7] and params["schedules"] == {"cfg": "0:(4), 7:(8)"}
    replayed = morph(sd, MorphConfig.from_params(params))
    assert all(np.array_equal(pixels(a), pixels(b)) for a, b in zip(out.images, replayed.images))
    assert replayed.recipe.params == out.recipe.params


# --- keyframe files ------------------------------------------------------------------------------------
def test_keyframe_files_frame_maps_lists_with_frames_and_documents(tmp_path):
    f = tmp_path / "k.json"
    f.write_text(json.dumps({"0": "a red cat@1", "48": {"prompt": "a dog", "seed": 2}, "60": "seed:3"}))
    doc = load_keyframe_document(f)
    assert [(k.prompt, k.seed, k.frame) for k in doc.keyframes] == [("a red cat", 1, 0), ("a dog", 2, 48), (None, 3, 60)]
    f.write_text(json.dumps({"keyframes": [{"prompt": "a", "frame": 0}, "b", {"prompt": "c", "frame": 9}],
                             "schedules": {"cfg": "0:(7), 9:(3)"}, "seed_behavior": "iter"}))
    doc = load_keyframe_document(f)
    assert [k.frame for k in doc.keyframes] == [0, None, 9] and doc.schedules == {"cfg": "0:(7), 9:(3)"} and doc.seed_behavior == "iter"


@pytest.mark.parametrize("text, needle", [
    ('{"0": "a", "0": "b"}', 'gives the key "0" twice'),
    ('{"0": "a", "00": "b"}', "gives frame 0 twice"),
    ('{"0": "a", "48": "b", "24": "c"}', "lists frame 24 after frame 48"),
    ('{"0": "a", "1.5": "b"}', 'has the key "1.5"'),
    ('{"0": "a", "10": {"prompt": "b", "frame": 12}}', "also says frame 12"),
    ('[{"prompt": "a", "frame": 0}, {"prompt": "b", "frame": 2.5}]', "has frame 2.5; frames are whole numbers"),
    ('[{"prompt": "a", "frame": -1}, "b"]', "has frame -1"),
    ('{"keyframes": ["a", "b"], "schedule": {}}', "unknown keys schedule"),
])  # fmt: skip
def test_bad_keyframe_files(tmp_path, text, needle):
    f = tmp_path / "k.json"
    f.write_text(text)
    with pytest.raises(LatentscapeError) as err:
        load_keyframe_document(f)
    assert needle in str(err.value) and "\n" not in str(err.value)


# --- bad configs: one sentence, before any model work ------------------------------------------------------
@pytest.mark.parametrize("config, needle", [
    (MorphConfig(keyframes=PINNED, frames=24), "frames must be 8"),
    (MorphConfig(keyframes=pinned(("a", 1, 0), ("b", 1, 30)), frames=24), "pinned to frame 30, beyond the last frame 23"),
    (MorphConfig(keyframes=pinned(("a", 1, 0), ("b", 1, 5), ("c", 1, 5))), "both pinned to frame 5"),
    (MorphConfig(keyframes=pinned(("a", 1, 0), ("b", 1, 9), ("c", 1, 5))), "pinned to frame 5, before keyframe 2's frame 9"),
    (MorphConfig(keyframes=pinned(("a", 1, 3), ("b", 1, 9))), "the first keyframe is frame 0"),
    (MorphConfig(keyframes=pinned(("a", 1, 0), ("b", 1, 9)), closed=True), "frames is needed for a closed loop"),
    (MorphConfig(keyframes=(Keyframe(prompt="a", frame=0), Keyframe(prompt="b"))), "last keyframe (keyframe 2) is not pinned"),
    (MorphConfig(keyframes=(Keyframe(prompt="a", frame=0), Keyframe(prompt="b"), Keyframe(prompt="c", frame=1))), "too few frames"),
    (MorphConfig(keyframes=("a", "b"), frames=24, schedules={"cfg": "0:(7), 30:(9)"}), "schedules.cfg has a point at frame 30, beyond the last frame 23"),
    (MorphConfig(keyframes=("a", "b"), schedules={"cfg": "0:(7 + sin(t))"}), "math expressions"),
    (MorphConfig(keyframes=("a", "b"), schedules={"cfg": "0:(nan)"}), "finite number"),
    (MorphConfig(keyframes=("a", "b"), schedules={"cfg": "0:(-2)"}), "schedules.cfg has -2 at frame 0"),
    (MorphConfig(keyframes=("a", "b"), schedules={"guidance_rescale": "0:(1.5)"}), "from 0 to 1"),
    (MorphConfig(keyframes=("a", "b"), schedules={"denoise": "0:(1)"}), "unknown name 'denoise'"),
    (MorphConfig(keyframes=("a", "b"), schedules={"strength": "0:(0.5)"}), "only to a path with image keyframes"),
    (MorphConfig(keyframes=(Keyframe(prompt="a", cfg=3.0), "b"), schedules={"cfg": "0:(7)"}), "use one of them"),
    (MorphConfig(keyframes=("a", "b"), schedules={"seed": "0:(1)"}), "needs seed_behavior schedule"),
    (MorphConfig(keyframes=("a", "b"), seed_behavior="schedule"), "needs seed_behavior schedule"),
    (MorphConfig(keyframes=("a", "b"), seed_behavior="ladder"), "seed_behavior got 'ladder'"),
    (MorphConfig(keyframes=("a", "b"), frames=9, seed_behavior="schedule", schedules={"seed": "0:(1), 4:(2)"}), "frame 4, which holds no keyframe"),
    (MorphConfig(keyframes=("a", "b"), frames=9, seed_behavior="schedule", schedules={"seed": "0:(1.5)"}), "expected a whole number"),
])  # fmt: skip
def test_bad_pins_and_schedules_are_one_sentence(config, needle):
    with pytest.raises(LatentscapeError) as err:
        check_config(config)
    assert needle in str(err.value) and "\n" not in str(err.value) and str(err.value).endswith(".")


def test_a_strength_schedule_is_refused_with_adaptive_pacing(tmp_path):
    from PIL import Image

    Image.new("RGB", (32, 32), "red").save(tmp_path / "a.png")
    config = MorphConfig(keyframes=(f"image:{tmp_path / 'a.png'}", "b"), pacing="adaptive", schedules={"strength": "0:(0.5)"},
                         image_mode="noise")
    with pytest.raises(LatentscapeError, match="cannot be used with pacing adaptive"):
        check_config(config)


# --- on disk: the manifest records pins and schedules; --resume reproduces them --------------------------
class Stop(Exception):
    pass


def test_resume_of_a_pinned_scheduled_random_seed_morph_gives_the_identical_video(sd, tmp_path):
    from latentscape.workflows.morph import render_morph

    config = MorphConfig(keyframes=pinned(("a red cat", None, 0), ("a dog in the snow", None, 2), ("city street", None, 6)),
                         steps=2, batch_size=2, seed_behavior="random", schedules={"cfg": "0:(4), 3:(9), 6:(6)"},
                             pacing="uniform")
    full = tmp_path / "full.gif"
    render_morph(sd, config, full)
    manifest = json.loads((tmp_path / "full.gif.manifest.json").read_text())
    assert manifest["schedule"]["keyframe_frames"] == [0, 2, 6]
    assert [f["cfg"] for f in manifest["schedule"]["frames"]] == pytest.approx([4, 4 + 5 / 3, 4 + 10 / 3, 9, 8, 7, 6])

    part = tmp_path / "part.gif"

    def stop(name, done, total):
        if name == "final" and done >= 4:
            raise Stop

    with pytest.raises(Stop):
        render_morph(sd, config, part, progress=stop)
    drawn = [k["seed"] for k in json.loads((tmp_path / "part.gif.manifest.json").read_text())["recipe"]["params"]["keyframes"]]
    steps = []
    render_morph(sd, config, part, resume=True, callback=lambda s: steps.append(s.step))
    assert len(steps) == 2 * 2  # frames 4-5 and 6: two batches of two steps; frames 0-3 are not redone
    again = json.loads((tmp_path / "part.gif.manifest.json").read_text())["recipe"]["params"]
    assert [k["seed"] for k in again["keyframes"]] == drawn and [k["frame"] for k in again["keyframes"]] == [0, 2, 6]
    # the same seeds drawn by the full render would be a coincidence; the resumed video must equal a render of its own recipe
    replayed = tmp_path / "replayed.gif"
    render_morph(sd, MorphConfig.from_params(again), replayed)
    assert replayed.read_bytes() == part.read_bytes()
    with pytest.raises(LatentscapeError, match="schedules"):  # a resume with another schedule is refused
        render_morph(sd, MorphConfig(**{**config.__dict__, "schedules": {"cfg": "0:(4)"}}), part, resume=True)
