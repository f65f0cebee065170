"""Shared command-line handling of the scenarios: class paths first, then the classes' own arguments."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from edge_ai_lib.core.args import load_class
from edge_ai_lib.core.errors import EdgeAIError


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
