"""Shared command-line handling of the scenarios: class paths first, then the classes' own arguments."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from edge_ai_lib.core.args import load_class
from edge_ai_lib.core.errors import ConfigurationError, EdgeAIError


@dataclass(frozen=True)
class ClassArgument:
    """A positional argument naming a class by dotted path, which must derive from `base`."""

    name: str
    base: type
    help: str


@dataclass(frozen=True)
class PlainArgument:
    name: str
    help: str


REPORT_POSITIONALS = [PlainArgument("output", "Directory of the JSON result and the plots"),
                      PlainArgument("reportname", "Name of the report: prefix of every file written")]


def add_evaluation_arguments(group, warmup: int = 10) -> None:
    """Options of the scenarios that run a model over a dataset split and time it."""
    group.add_argument("--warmup", type=int, default=warmup,
                       help="Warm-up calls after the cold first call, left out of the statistics "
                            "(default: %(default)s)")
    group.add_argument("--max-samples", type=int, default=None, help="Evaluate at most this many samples")
    group.add_argument("--split", default="validation", help="Dataset split to evaluate (default: %(default)s)")


def check_evaluation_arguments(args: argparse.Namespace) -> None:
    if args.warmup < 0:
        raise ConfigurationError(f"--warmup must be 0 or more, got {args.warmup}")
    if args.max_samples is not None and args.max_samples < 1:
        raise ConfigurationError(f"--max-samples must be at least 1, got {args.max_samples}")


def parse_scenario_arguments(description: str, positionals: Sequence[ClassArgument | PlainArgument],
                             add_own: Callable[[argparse.ArgumentParser], None] | None = None,
                             argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, dict[str, type]]:
    """Parse a scenario's command line in two stages.

    The first stage reads only the positionals (class paths) so the classes can be loaded; the second
    builds the full parser from each class's `form_argparse`, so `-h` after the class paths lists
    every argument of those classes.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    class_arguments = [p for p in positionals if isinstance(p, ClassArgument)]
    first = argparse.ArgumentParser(add_help=False)
    for positional in class_arguments:
        first.add_argument(positional.name, nargs="?")
    given, _ = first.parse_known_args([a for a in argv if a not in ("-h", "--help")])
    positional_parser = argparse.ArgumentParser(add_help=False)
    for positional in positionals:
        positional_parser.add_argument(positional.name, help=positional.help)
    classes: dict[str, type] = {}
    parents = [positional_parser]
    for positional in class_arguments:
        path = getattr(given, positional.name)
        if path is None:
            continue
        try:
            cls = load_class(path, positional.base)
        except EdgeAIError as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2)
        classes[positional.name] = cls
        parents.append(cls.form_argparse()[0])
    full = argparse.ArgumentParser(description=description, parents=parents)
    common = full.add_argument_group("Scenario arguments")
    common.add_argument("--verbosity", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                        help="Log level (default: %(default)s)")
    if add_own:
        add_own(common)
    args = full.parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.verbosity),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args, classes


def run_scenario(main: Callable[[Sequence[str] | None], Any], argv: Sequence[str] | None = None) -> int:
    """Run a scenario's main, turning library errors into one clear line and exit status 1."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        main(argv)
    except EdgeAIError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
