"""Build an SD or SDXL pipeline from its component folders directly, for a fast start-up.

``from_pretrained`` spends most of a small model's load in its machinery, not in reading weights: on the
embedded model, transformers' checkpoint-conversion tables (about a thousand regexes compiled on the first
load), random initialisation that the weights then overwrite, diffusers' tensor-by-tensor dispatch and its
scheduler-compatibility imports. Here each model is built without initialising its weights (transformers'
``no_init_weights``; diffusers models on the meta device, CLIP on the CPU so that its non-persistent buffers
are made) and filled straight from its one ``.safetensors`` file; tokenizer and scheduler load with their own
``from_pretrained``, and the pipeline is made with its constructor, as ``from_pretrained`` itself ends.

Bit-identical to ``from_pretrained`` (tests/models/test_startup.py): the same classes, configs and weights,
cast to the same dtype. Anything this does not cover exactly -- other component classes, sharded or
variant-only weights, keys that need diffusers' conversions -- returns None, and ``load`` goes the
``from_pretrained`` way, which also words the errors of a damaged folder.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

# (library, class in model_index.json) -> (module that defines it, weights file in the component folder)
MODELS = {
    ("diffusers", "UNet2DConditionModel"): ("diffusers.models.unets.unet_2d_condition", "diffusion_pytorch_model.safetensors"),
    ("diffusers", "AutoencoderKL"): ("diffusers.models.autoencoders.autoencoder_kl", "diffusion_pytorch_model.safetensors"),
    ("transformers", "CLIPTextModel"): ("transformers.models.clip.modeling_clip", "model.safetensors"),
    ("transformers", "CLIPTextModelWithProjection"): ("transformers.models.clip.modeling_clip", "model.safetensors"),
}
TOKENIZERS = {("transformers", "CLIPTokenizer"): "transformers.models.clip.tokenization_clip"}
PIPELINES = ("StableDiffusionPipeline", "StableDiffusionXLPipeline")
SD_FAMILY_EXTRA = {"safety_checker": None, "requires_safety_checker": False}  # what load() passes for SD
# optional components for image inputs latentscape never uses (IP-Adapter, the safety checker's processor):
# left out, so their image-processing modules are not imported
UNUSED = ("feature_extractor", "image_encoder")


def _class(module: str, name: str) -> type:
    return getattr(importlib.import_module(module), name)


def _scheduler(library: str, name: str, folder: Path):
    if library != "diffusers" or not name.endswith("Scheduler"):
        return None
    module = importlib.import_module("diffusers.schedulers")  # diffusers' lazy table: imports only this scheduler
    cls = getattr(module, name, None)
    return None if cls is None else cls.from_pretrained(folder)


def _model(library: str, name: str, folder: Path, dtype: torch.dtype):
    """The model in ``folder`` built without weight initialisation and filled from its safetensors file, or
    None when the folder is not the plain one-file layout or its tensors do not match the config exactly."""
    module, weights = MODELS[(library, name)]
    path = folder / weights
    if not path.is_file():
        return None
    from safetensors.torch import load_file

    cls = _class(module, name)
    from transformers.initialization import no_init_weights  # torch's init functions made no-ops while building

    state = {k: v.to(dtype) for k, v in load_file(path).items()}  # the cast from_pretrained(dtype=) makes

    if library == "diffusers":
        with torch.device("meta"), no_init_weights():
            model = cls.from_config(cls.load_config(folder))
    else:
        with no_init_weights():  # on the CPU: non-persistent buffers (CLIP's position ids) are made by the constructor
            model = cls(cls.config_class.from_pretrained(folder))
    # assign: the loaded tensors become the parameters, as in from_pretrained (same memory, so the same kernels
    # and the same last bits; a copy into fresh tensors moved SDXL's pooled embeddings by 1 ulp)
    model.load_state_dict(state, strict=True, assign=True)
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        return None  # a buffer the file does not hold: only from_pretrained's initialisation would make it
    model.eval()
    if library == "diffusers":
        model.register_to_config(_name_or_path=str(folder))
    else:
        model.config.name_or_path = str(folder)
        model.config.dtype = dtype  # from_pretrained records the dtype it loaded in
    return model


def build_pipeline(cls: type, folder: Path, index: dict[str, Any], family: str, dtype: torch.dtype):
    """``cls`` (the family's pipeline class) with the components of the diffusers folder ``folder`` (whose
    ``model_index.json`` is ``index``), as ``from_pretrained`` would make it; None where a component is of a
    kind this does not build, so the caller falls back to ``from_pretrained``."""
    if cls.__name__ not in PIPELINES:
        return None
    params = inspect.signature(cls.__init__).parameters
    kwargs: dict[str, Any] = {}
    for key, entry in index.items():
        if key.startswith("_") or key not in params:
            continue
        if not (isinstance(entry, list) and len(entry) == 2):
            kwargs[key] = entry  # a pipeline setting (force_zeros_for_empty_prompt, requires_safety_checker)
            continue
        library, name = entry
        if library is None:
            kwargs[key] = None
            continue
        if key in UNUSED or (key in SD_FAMILY_EXTRA and family == "sd"):
            kwargs[key] = None
            continue
        sub = folder / key
        try:
            if (library, name) in MODELS:
                component = _model(library, name, sub, dtype)
            elif (library, name) in TOKENIZERS:
                component = _class(TOKENIZERS[(library, name)], name).from_pretrained(sub)
            else:
                component = _scheduler(library, name, sub)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:  # missing/unexpected keys, shapes: let from_pretrained say it
            log.info("component %s of %s is not loaded directly (%s); using from_pretrained", key, folder, type(exc).__name__)
            return None
        if component is None:
            return None
        kwargs[key] = component
    if family == "sd":
        kwargs.update(SD_FAMILY_EXTRA)
    for name, p in params.items():  # optional components the folder does not list are None, as from_pretrained passes them
        if name != "self" and name not in kwargs and p.default is inspect.Parameter.empty:
            if name not in cls._optional_components:
                return None  # from_pretrained says which component is missing
            kwargs[name] = None
    pipe = cls(**kwargs)
    pipe.register_to_config(_name_or_path=str(folder))
    return pipe
