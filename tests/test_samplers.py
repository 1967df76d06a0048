import pytest

from latentscape.errors import LatentscapeError
from latentscape.samplers import SAMPLERS, make_scheduler, resolve_sampler, sampler_names

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
    with pytest.raises(LatentscapeError, match="--sampler got 'flow_euler'"):
        resolve_sampler("flow_euler", flow=False)
    with pytest.raises(LatentscapeError, match="accepted: euler, euler_a"):
        resolve_sampler("k_lms", flow=False)
