"""`latentscape <verb> ...`: a thin layer over the workflows (no logic lives only here)."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
import time
import warnings

from latentscape import __version__

# Each module exposes register(subparsers); verbs are added in this order in --help.
COMMANDS = (
    "latentscape.interfaces.commands.generate",
    "latentscape.interfaces.commands.latents",
    "latentscape.interfaces.commands.replay",
    "latentscape.interfaces.commands.morph",
    "latentscape.interfaces.commands.vary",
    "latentscape.interfaces.commands.blend",
    "latentscape.interfaces.commands.mix",
    "latentscape.interfaces.commands.explore",
    "latentscape.interfaces.commands.latent_map",
    "latentscape.interfaces.commands.sweep",
    "latentscape.interfaces.commands.plot",
    "latentscape.interfaces.commands.latent_math",
    "latentscape.interfaces.commands.invert",
    "latentscape.interfaces.commands.smoothness",
    "latentscape.interfaces.commands.models",
    "latentscape.interfaces.commands.serve",
    "latentscape.interfaces.train_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latentscape",
        description="Generate, morph, blend, vary and explore in the latent space of diffusion models.",
    )
    parser.add_argument("--version", action="version", version=f"latentscape {__version__}")
    parser.add_argument("--verbose", "-v", action="store_true", help="show library logs and warnings")
    sub = parser.add_subparsers(dest="command", metavar="VERB")
    sub.required = True
    for name in COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    for verb in sub.choices.values():  # every verb takes --threads (the train stages have their own)
        if not any(isinstance(a, argparse._SubParsersAction) or "--threads" in a.option_strings for a in verb._actions):
            verb.add_argument("--threads", type=_thread_count, default=None, metavar="N",
                              help="CPU threads for torch (default: torch's own choice, one per physical core)")
    return parser


def verb_parser(parser: argparse.ArgumentParser, verb: str | None) -> argparse.ArgumentParser | None:
    """The sub-parser of ``verb`` (it knows which flag sets which config field), or None."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices.get(verb)
    return None


def _thread_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a thread count; accepted: a whole number of at least 1")
    return value


def set_thread_policy(threads: int | None) -> None:
    """Keep CPU renders fast when other processes share the cores; called by the CLI, never on import.

    OpenMP's default lets idle worker threads spin at every barrier: with another process on a core, each
    parallel region then waits for a descheduled spinner, and a morph runs 3-10x slower. A passive wait
    policy must be in the environment before torch loads its OpenMP runtime. The thread count changes
    nothing in the pixels (tests/cli/test_threads.py).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        os.environ["MKL_NUM_THREADS"] = str(threads)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)


def _quiet_libraries(verbose: bool) -> None:
    """Keep the terminal to our own output unless --verbose (only the CLI does this, never on import)."""
    level = logging.INFO if verbose else logging.ERROR
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not verbose:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
    for name in ("transformers", "diffusers", "accelerate", "huggingface_hub"):
        logging.getLogger(name).setLevel(level)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Python runs next so that it unwinds like Ctrl-C: temp files are removed, an
    encoder is stopped, finished morph frames are kept for --resume."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    from latentscape.errors import LatentscapeError

    argv = sys.argv[1:] if argv is None else argv
    _quiet_libraries("--verbose" in argv or "-v" in argv[:1])
    parser = build_parser()
    args = parser.parse_args(argv)
    args.started_at = time.perf_counter()  # --json timings' total_s
    set_thread_policy(getattr(args, "threads", None))
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if threading.current_thread() is threading.main_thread() else None
    try:
        return int(args.func(args) or 0)
    except LatentscapeError as exc:
        from latentscape.interfaces.common import with_flags

        print(f"latentscape {args.command}: error: {with_flags(exc, verb_parser(parser, args.command))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"latentscape {args.command}: {what}; nothing was written for unfinished outputs.", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
