import pytest

from latentscape.errors import LatentscapeError
from latentscape.samplers import (
    SAMPLERS, canonical_sampler, from_a1111, make_scheduler, resolve_sampler, sampler_names,
)

SD_CONFIG = {"_class_name": "PNDMScheduler", "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
             "num_train_timesteps": 1000, "prediction_type": "v_prediction", "skip_prk_steps": True, "steps_offset": 1}


@pytest.mark.parametrize("name", sampler_names(False))
def test_every_sampler_builds_from_the_model_config(name):
    s = make_scheduler(name, SD_CONFIG, flow=False)
    assert type(s).__name__ == SAMPLERS[name].scheduler
    assert s.config.prediction_type == "v_prediction"  # the model's own config is kept
    s.set_timesteps(10)
    assert len(s.timesteps) >= 10


def test_karras_variant():
    assert make_scheduler("dpmpp_2m_karras", SD_CONFIG, False).config.use_karras_sigmas is True
    assert make_scheduler("dpmpp_2m", SD_CONFIG, False).config.use_karras_sigmas is False


def test_flow_aliases_and_errors():
    assert resolve_sampler("euler", flow=True).name == "flow_euler"
    with pytest.raises(LatentscapeError, match="not available for flow-matching models.*flow_euler"):
        resolve_sampler("dpmpp_2m", flow=True)
    with pytest.raises(LatentscapeError, match="^sampler got 'flow_euler'"):
        resolve_sampler("flow_euler", flow=False)
    with pytest.raises(LatentscapeError, match=r"accepted: euler, euler_a.*\(A1111: DDIM, DPM\+\+ 2M, .*Euler a"):
        resolve_sampler("k_lms", flow=False)


@pytest.mark.parametrize("a1111, ours", [("Euler a", "euler_a"), ("euler A", "euler_a"), ("Euler", "euler"), ("DPM++ 2M", "dpmpp_2m"),
                                         ("dpm++ 2m karras", "dpmpp_2m_karras"), ("DDIM", "ddim"), ("Heun", "heun"),
                                         ("UniPC", "unipc"), ("LCM", "lcm"), ("k_euler_a", "euler_a")])
def test_a1111_names_are_the_same_samplers(a1111, ours):
    assert canonical_sampler(a1111) == ours
    assert resolve_sampler(a1111, flow=False) == SAMPLERS[ours]
    assert make_scheduler(a1111, SD_CONFIG, False).config == make_scheduler(ours, SD_CONFIG, False).config


def test_schedules_set_the_diffusers_equivalents():
    assert canonical_sampler("DPM++ 2M", "Karras") == "dpmpp_2m_karras"
    assert canonical_sampler("Euler", "sgm uniform") == canonical_sampler("euler", "Simple") == "euler_sgm_uniform"
    config = make_scheduler("DPM++ 2M Exponential", SD_CONFIG, False).config
    assert (config.use_exponential_sigmas, config.use_karras_sigmas, config.algorithm_type) == (True, False, "dpmsolver++")
    assert make_scheduler("heun_karras", SD_CONFIG, False).config.use_karras_sigmas is True
    assert make_scheduler("euler_a_sgm_uniform", SD_CONFIG, False).config.timestep_spacing == "trailing"
    assert make_scheduler("euler_uniform", SD_CONFIG, False).config.timestep_spacing == "linspace"
    assert canonical_sampler("euler", "Automatic") == "euler"  # the model's own schedule
    # the schedules really change the sigmas the sampler steps through
    sigmas = {n: make_scheduler(n, SD_CONFIG, False) for n in ("euler", "euler_karras", "euler_exponential")}
    for s in sigmas.values():
        s.set_timesteps(8)
    assert len({tuple(s.sigmas.tolist()) for s in sigmas.values()}) == 3


def test_unhonoured_or_impossible_schedules_are_refused_in_one_sentence():
    with pytest.raises(LatentscapeError, match="^schedule got 'Align Your Steps', which is an A1111 schedule latentscape cannot reproduce; accepted: Automatic, Karras"):
        canonical_sampler("euler", "Align Your Steps")
    with pytest.raises(LatentscapeError, match="Beta', which is an A1111 schedule latentscape cannot"):
        canonical_sampler("euler", "Beta")
    with pytest.raises(LatentscapeError, match="not a schedule latentscape knows"):
        canonical_sampler("euler", "wobbly")
    with pytest.raises(LatentscapeError, match="Karras schedule is not available with Euler a; it works with Euler, Heun, DPM\\+\\+ 2M, UniPC"):
        resolve_sampler("Euler a Karras", flow=False)
    with pytest.raises(LatentscapeError, match="already names the Karras schedule"):
        canonical_sampler("dpmpp_2m_karras", "Exponential")
    with pytest.raises(LatentscapeError, match="flow-matching models take only their own schedule"):
        resolve_sampler("euler_karras", flow=True)
    assert resolve_sampler("Euler", flow=True).name == resolve_sampler(from_a1111("Euler", "Simple"), flow=True).name == "flow_euler"


def test_a1111_reading_of_a_bare_sampler_name():
    # A1111 >= 1.9: no Schedule type (or Automatic) is the sampler's own default: DPM++ 2M -> Karras, Euler -> Uniform
    assert from_a1111("DPM++ 2M") == from_a1111("DPM++ 2M", "Automatic") == "dpmpp_2m_karras"
    assert from_a1111("DPM++ 2M", "Uniform") == "dpmpp_2m_uniform"
    assert from_a1111("Euler a") == "euler_a_uniform"
    assert from_a1111("DDIM") == "ddim" and from_a1111("UniPC", "Automatic") == "unipc"
    assert from_a1111("DPM++ 2M Karras") == "dpmpp_2m_karras"


@pytest.mark.parametrize("spacing", ["trailing", "linspace", "leading"])
def test_what_the_infotext_writer_says_reads_back_to_the_same_scheduler(spacing):
    """``Sampler`` + ``Schedule type`` as the infotext writer labels them, read as A1111 >= 1.9 reads them
    (:func:`from_a1111`), build the scheduler that ran: a latentscape PNG replays in A1111 terms."""
    from types import SimpleNamespace

    from latentscape.workflows.common import schedule_label

    config = {**SD_CONFIG, "timestep_spacing": spacing}
    model = SimpleNamespace(scheduler_config=config, is_flow=False)
    for name in [n for n, s in SAMPLERS.items() if not s.flow] + ["euler_karras", "dpmpp_2m_exponential", "heun_uniform"]:
        spec = resolve_sampler(name, False)
        label = schedule_label(model, name) or None
        back = make_scheduler(from_a1111(spec.a1111, label), config, False)
        assert type(back).__name__ == spec.scheduler
        ran = make_scheduler(name, config, False)
        for s in (back, ran):
            s.set_timesteps(7)
        assert back.timesteps.tolist() == ran.timesteps.tolist(), (name, label)
        if hasattr(ran, "sigmas"):
            assert back.sigmas.tolist() == ran.sigmas.tolist(), (name, label)
