"""What every training stage shares: seeding, autocast, EMA, learning-rate schedule, checkpoints, the loop.

Determinism: everything random in a step (batch order, crops, noise, timesteps, caption dropout) comes
from a generator seeded by ``(seed, step)``, so a run resumed from a checkpoint continues exactly as the
uninterrupted run would have.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from latentscape.errors import LatentscapeError

log = logging.getLogger(__name__)

# Config fields that may change between invocations of one run: they change neither the schedule nor the math.
RESUMABLE_FIELDS = frozenset({"minutes", "threads", "checkpoint_every", "log_every", "processes", "procs", "progress"})


@dataclass(frozen=True)
class LoopConfig:
    steps: int  # the schedule's length (warmup + cosine decay)
    batch_size: int
    lr: float
    min_lr_ratio: float = 0.1
    warmup: int = 200
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.0  # 0 disables EMA
    ema_warmup: int = 0  # EMA starts after this many steps (before: copies the weights)
    seed: int = 0
    checkpoint_every: int = 1000
    log_every: int = 50
    minutes: float | None = None  # wall-clock budget for this invocation; stops early with a checkpoint
    threads: int | None = None  # torch CPU threads (None: torch's default)


def step_generator(seed: int, step: int) -> torch.Generator:
    """The CPU generator for one step: a pure function of (seed, step)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def epoch_batches(n: int, batch_size: int, seed: int, step: int) -> torch.Tensor:
    """Indices of the batch for ``step``: epochs are seeded permutations, batches consecutive slices."""
    per_epoch = max(1, n // batch_size)
    epoch, k = divmod(step, per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 7919 + epoch))
    return order[k * batch_size : (k + 1) * batch_size]


def world() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) unless ``torch.distributed`` is initialised."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard(x: torch.Tensor) -> torch.Tensor:
    """This process's share of a batch drawn for the whole batch (rows rank, rank + world, ...).

    Every process draws the full batch's randomness from the same step generator and keeps its rows, so a
    run on N processes computes what one process would (up to float summation order).
    """
    rank, size = world()
    return x[rank::size] if size > 1 else x


def _all_reduce_grads(params: list[torch.nn.Parameter]) -> None:
    """Average gradients across processes in one flat buffer (one collective per step)."""
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(p).to(p.dtype)
        offset += n


def _any(flag: bool) -> bool:
    """True on every process if it is true on any (keeps stop decisions in step)."""
    import torch.distributed as dist

    if world()[1] == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(t)
    return bool(t.item() > 0)


def lr_at(step: int, cfg: LoopConfig) -> float:
    """Linear warmup, then cosine decay to ``min_lr_ratio · lr`` at ``cfg.steps`` (flat after)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def fast_bf16(device: torch.device) -> bool:
    """Whether bf16 compute is native here: CUDA with bf16, or a CPU with AMX or AVX512-BF16. Elsewhere torch
    emulates it: a VAE decoder step measured 12x slower in bf16 than in fp32 on an AMD EPYC without them."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and bool(cpu_flags() & {"amx_bf16", "avx512_bf16"})


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast where bf16 is native (:func:`fast_bf16`: ~2x faster there); fp32 elsewhere."""
    if enabled and fast_bf16(device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class EMA:
    """Exponential moving average of a module's parameters (and a copy of its buffers)."""

    def __init__(self, module: torch.nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(module).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, module: torch.nn.Module, decay: float | None = None) -> None:
        d = self.decay if decay is None else decay
        for e, p in zip(self.module.parameters(), module.parameters()):
            e.lerp_(p.detach().to(e.dtype), 1 - d)
        for e, b in zip(self.module.buffers(), module.buffers()):
            e.copy_(b)


@dataclass
class State:
    """Everything a checkpoint holds."""

    step: int
    modules: dict[str, torch.nn.Module]
    optimizer: torch.optim.Optimizer
    ema: dict[str, EMA]
    extra: dict[str, Any]


def save_checkpoint(path: Path, state: State, config: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "step": state.step,
        "modules": {k: m.state_dict() for k, m in state.modules.items()},
        "optimizer": state.optimizer.state_dict(),
        "ema": {k: e.module.state_dict() for k, e in state.ema.items()},
        "extra": state.extra,
        "config": config,
    }
    tmp = path.with_suffix(".partial")
    torch.save(blob, tmp)
    os.replace(tmp, path)


def read_checkpoint(path: Path) -> dict:
    """The checkpoint's contents, unpickled with ``weights_only=True``: tensors and plain values only.

    A checkpoint is a file anyone who can write to the run folder can plant, and a full unpickle runs
    whatever code it names; the restricted unpickler refuses every class outside torch's allow-list
    before constructing it, so a tampered checkpoint is refused without running its payload."""
    import pickle
    import zipfile

    import warnings

    try:
        with warnings.catch_warnings():  # torch warns about odd pickle protocols before refusing: the error says it all
            warnings.simplefilter("ignore")
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        import re

        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found:
            raise LatentscapeError(f"the checkpoint {path} names {found.group(1)}, not only tensors and plain values, so "
                                   "it could run code when loaded and was not loaded; delete it or pass --fresh to start over.") from None
        raise LatentscapeError(f"the checkpoint {path} could not be read (it is damaged or not a PyTorch checkpoint); "
                               "delete it or pass --fresh to start over.") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise LatentscapeError(f"the checkpoint {path} could not be read ({first}); delete it or pass --fresh to start over.") from None
    missing = [k for k in ("step", "modules", "optimizer", "ema") if not isinstance(blob, dict) or k not in blob]
    if missing:
        raise LatentscapeError(f"the checkpoint {path} is not a latentscape training checkpoint (it lacks "
                               f"{', '.join(missing)}); delete it or pass --fresh to start over.")
    return blob


def load_checkpoint(path: Path, state: State, config: dict | None = None) -> None:
    """Load ``path`` into ``state``; with ``config``, first refuse a checkpoint trained with a different one."""
    blob = read_checkpoint(path)
    differ = config_differences(blob["config"], config) if config is not None and "config" in blob else []
    if differ:
        raise LatentscapeError(f"the checkpoint {path} was trained with other values of {', '.join(differ)}; "
                               "pass the same values to resume it, or --fresh to start over.")
    for k, m in state.modules.items():
        m.load_state_dict(blob["modules"][k])
    state.optimizer.load_state_dict(blob["optimizer"])
    for k, e in state.ema.items():
        e.module.load_state_dict(blob["ema"][k])
    state.step = int(blob["step"])
    state.extra.update(blob.get("extra", {}))


def run(
    state: State,
    cfg: LoopConfig,
    train_step: Callable[[int, torch.Generator], dict[str, float]],
    *,
    run_dir: Path,
    config: dict,
    evaluate: Callable[[int], dict[str, float]] | None = None,
    eval_every: int = 0,
    on_checkpoint: Callable[[int], None] | None = None,
    progress: bool = True,
) -> State:
    """Call ``train_step(step, generator)`` (forward, backward; returns logged numbers) until ``cfg.steps``
    or ``cfg.minutes``; this function owns the optimizer step, LR, clipping, EMA, checkpoints and logs.
    ``on_checkpoint(step)`` runs after each checkpoint (e.g. to write exportable weights).

    Under ``torch.distributed`` (see :func:`shard`) gradients are averaged across processes before the
    step; only rank 0 logs, evaluates and writes checkpoints."""
    from tqdm.auto import tqdm

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    # Denormal floats (tiny Adam moments, near-zero activations) run ~100x slower on x86 CPUs.
    torch.set_flush_denormal(True)
    rank, size = world()
    if cfg.batch_size % size:
        raise LatentscapeError(f"the batch size {cfg.batch_size} does not split over {size} processes; "
                               "use a batch size that is a multiple of the process count.")
    main = rank == 0
    run_dir.mkdir(parents=True, exist_ok=True)
    if main:
        (run_dir / "config.json").write_text(json.dumps(config | {"processes": size}, indent=2, default=str))
    params = [p for g in state.optimizer.param_groups for p in g["params"]]
    log_file = (run_dir / "log.jsonl").open("a") if main else open(os.devnull, "w")
    began = start = time.monotonic()
    bar = tqdm(total=cfg.steps, initial=state.step, disable=not (progress and main), dynamic_ncols=True, mininterval=5)
    smooth: dict[str, float] = {}
    try:
        while state.step < cfg.steps:
            step = state.step
            for g in state.optimizer.param_groups:
                g["lr"] = lr_at(step, cfg)
            state.optimizer.zero_grad(set_to_none=True)
            logs = train_step(step, step_generator(cfg.seed, step))
            if size > 1:
                _all_reduce_grads(params)
            if cfg.grad_clip:
                logs["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
            state.optimizer.step()
            for name, ema in state.ema.items():
                ema.update(state.modules[name], 0.0 if step < cfg.ema_warmup else None)
            state.step = step + 1
            for k, v in logs.items():
                smooth[k] = v if k not in smooth else 0.98 * smooth[k] + 0.02 * v
            bar.update(1)
            bar.set_postfix({k: f"{v:.4g}" for k, v in smooth.items() if k != "grad_norm"}, refresh=False)
            if state.step % cfg.log_every == 0:
                wall = state.extra.get("wall_seconds", 0.0) + time.monotonic() - start  # all invocations
                log_file.write(json.dumps({"step": state.step, "time": wall, **smooth}) + "\n")
                log_file.flush()
            if main and evaluate is not None and eval_every and state.step % eval_every == 0:
                metrics = evaluate(state.step)
                log.info("step %d: %s", state.step, metrics)
                log_file.write(json.dumps({"step": state.step, "eval": metrics}) + "\n")
                log_file.flush()
            out_of_time = _any(cfg.minutes is not None and time.monotonic() - began > 60 * cfg.minutes)
            if state.step % cfg.checkpoint_every == 0 or state.step == cfg.steps or out_of_time:
                state.extra["wall_seconds"] = state.extra.get("wall_seconds", 0.0) + time.monotonic() - start
                start = time.monotonic()
                if main:
                    save_checkpoint(run_dir / "last.pt", state, config)
                    if on_checkpoint is not None:
                        on_checkpoint(state.step)
            if out_of_time:
                log.info("stopping at step %d: the %.1f-minute budget is spent", state.step, cfg.minutes)
                break
    finally:
        bar.close()
        log_file.close()
    return state


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_differences(stored: dict, current: dict) -> list[str]:
    """Dotted names of the fields that differ between two run configs, ignoring :data:`RESUMABLE_FIELDS`."""
    a, b = _flatten(stored), _flatten(current)
    return sorted(k for k in a.keys() | b.keys()
                  if k.rsplit(".", 1)[-1] not in RESUMABLE_FIELDS and a.get(k, "<absent>") != b.get(k, "<absent>"))


def resume_if_present(run_dir: Path, state: State, resume: bool, config: dict | None = None) -> None:
    """Load ``run_dir/last.pt`` into ``state`` when resuming and it exists; with ``config``, refuse a
    checkpoint trained with a different one (before loading anything)."""
    ckpt = run_dir / "last.pt"
    if resume and ckpt.is_file():
        load_checkpoint(ckpt, state, config)
        log.info("resumed %s at step %d", ckpt, state.step)


def config_dict(*configs: Any) -> dict:
    return {type(c).__name__: asdict(c) for c in configs}


MODEL_MARKERS = ("model_index.json", "unet", "vae", "text_encoder")  # what model folders this project writes hold


def check_replaceable(folder: Path, flag: str = "--out") -> None:
    """Only a model folder (or an empty folder) is ever replaced or deleted: never a user's other folder,
    a file, or a link, whatever path an option names."""
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise LatentscapeError(f"{flag} '{folder}' is a file or a link; latentscape replaces only model folders it wrote: choose another path.")
    if folder.is_dir() and any(folder.iterdir()) and not any((folder / m).exists() for m in MODEL_MARKERS):
        raise LatentscapeError(f"{flag} '{folder}' is a folder that holds no model ({' or '.join(MODEL_MARKERS)}); latentscape replaces only model folders it wrote: choose another path or empty it yourself.")


def replace_folder(new: Path, out: Path) -> None:
    """Put the finished folder ``new`` in place of ``out``: move the old one aside, rename the new one in,
    then delete the old one (at every moment one complete folder exists under one of the two names)."""
    old = out.with_name(out.name + ".old")
    check_replaceable(out)
    check_replaceable(old)
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        out.rename(old)
    new.rename(out)
    if old.exists():
        shutil.rmtree(old)


def hardware(device: torch.device) -> str:
    """A one-line description of what trained the model, for the training summary."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
