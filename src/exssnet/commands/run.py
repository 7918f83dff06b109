"""`exssnet run`: learn a sequence of tasks and write results.json."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from exssnet.commands.run_flags import SYSTEM, HelpMethod, add_config_flags, unknown_keys_error
from exssnet.run.config import RunConfig, config_fields, load_yaml

NAME = "run"
HELP = "learn a sequence of tasks and write results.json"
USAGE = "exssnet run [--config FILE] [--method NAME] [--benchmark NAME] [--FLAG VALUE ...] [--out DIR]"
EXIT_INTERRUPTED = 130


def quiet_hugging_face() -> None:
    """No Hugging Face progress bars either (loading an encoder or tokenizer draws them otherwise)."""
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # read when huggingface_hub / transformers are imported
    if "huggingface_hub" in sys.modules:  # already imported: switch the bars off directly
        sys.modules["huggingface_hub"].utils.disable_progress_bars()
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()


def given_values(args: argparse.Namespace) -> dict[str, Any]:
    """Config keys from the YAML file, then flags given on the command line (defaults not included)."""
    values: dict[str, Any] = load_yaml(args.config) if args.config else {}
    known = {f.name for f in config_fields()}
    unknown = [key for key in values if key not in known]
    if unknown:
        raise unknown_keys_error(unknown)
    for f in config_fields():
        given = getattr(args, f.name, None)
        if given is not None:
            values[f.name] = given
    return values


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Defaults, then the YAML file, then flags given on the command line."""
    return RunConfig.from_dict(given_values(args))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = USAGE
    parser.add_argument("--help-method", action=HelpMethod, metavar="NAME", help="show one method's settings and exit")
    parser.add_argument("--config", metavar="FILE", help="YAML file of config keys (flags given here override it)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="output folder for results.json (default: none, nothing written)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing results.json in --out")
    parser.add_argument("--resume", action="store_true",
                        help="continue the killed run in --out from its last finished task (its saved config is used)")
    groups = add_config_flags(parser)
    groups[SYSTEM].add_argument("--quiet", action="store_true", help="no progress bars")
    groups[SYSTEM].add_argument("--no-checkpoints", dest="checkpoints", action="store_false",
                                help="do not write a checkpoint into --out after every task (default: written)")


def execute(args: argparse.Namespace) -> int:
    from exssnet import distributed
    from exssnet.run.files import RESULTS_FILE
    from exssnet.run.resume import interrupted_message, resume_config
    from exssnet.run.runner import run_experiment
    from exssnet.run.summary import format_summary

    if args.quiet:
        quiet_hugging_face()
    if args.resume and args.out is not None:
        config = resume_config(args.out, given_values(args))
    else:
        config = config_from_args(args)
    try:
        with distributed.launch(config.device):  # torchrun: join the process group (docs/distributed.md)
            results = run_experiment(config, out=args.out, progress=not args.quiet, overwrite=args.overwrite,
                                     resume=args.resume, checkpoints=args.checkpoints)
            main = distributed.is_main()
    except KeyboardInterrupt:
        print(f"exssnet: {interrupted_message(args.out)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not main:
        return 0
    print(format_summary(results, warnings_shown=not args.quiet and not args.resume))  # the run logged them as they came
    if args.out is not None:
        print(f"results written to {args.out / RESULTS_FILE}")
    return 0
