"""Shared command-line handling of the scenarios: class paths first, then the classes' own arguments."""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import difflib
import logging
import os
import signal
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
    # No abbreviations anywhere: `--num-thread` must be refused, not read as `--num-threads`.
    first = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for positional in class_arguments:
        first.add_argument(positional.name, nargs="?")
    given, _ = first.parse_known_args([a for a in argv if a not in ("-h", "--help")])
    positional_parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
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
    full = argparse.ArgumentParser(description=description, parents=parents, allow_abbrev=False)
    common = full.add_argument_group("Scenario arguments")
    common.add_argument("--verbosity", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                        help="Log level (default: %(default)s)")
    if add_own:
        add_own(common)
    # Unknown options are reported before anything else (a missing required one, say), since a
    # misspelt option is often the required one.
    unknown = _unknown_options(full, argv)
    if not unknown:
        args, unknown = full.parse_known_args(argv)
    if unknown:
        known = {cls.__name__: _long_options(cls.form_argparse()[0]._actions) for cls in classes.values()}
        known["the scenario"] = _long_options(common._group_actions)
        print(f"error: {_unknown_arguments(unknown, known)}", file=sys.stderr)
        raise SystemExit(2)
    logging.basicConfig(level=getattr(logging, args.verbosity),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args, classes


def _unknown_options(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """The tokens of `argv` that look like options (as argparse judges) but are none of the parser's."""
    unknown = []
    for token in argv:
        if token == "--":
            break
        if token.startswith("-") and token != "-" and not _is_number(token) \
                and token.partition("=")[0] not in parser._option_string_actions:
            unknown.append(token)
    return unknown


def _long_options(actions: Sequence[argparse.Action]) -> list[str]:
    return sorted({option for action in actions for option in action.option_strings if option.startswith("--")})


def _unknown_arguments(unknown: Sequence[str], known: dict[str, list[str]]) -> str:
    """One line naming what was not understood, with the options each given class does take."""
    every_option = [option for options in known.values() for option in options]
    options = [token.partition("=")[0] for token in unknown if token.startswith("-") and not _is_number(token)]
    if options:
        guesses = []
        for option in options:
            nearby = difflib.get_close_matches(option, every_option, n=1, cutoff=0.6)
            guesses.append(f"{option} (did you mean {nearby[0]}?)" if nearby else option)
        problem = f"unrecognized option{'s' if len(options) > 1 else ''} {', '.join(guesses)}"
    else:
        problem = f"unexpected argument{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}"
    listing = "; ".join(f"{owner}: {', '.join(names)}" for owner, names in known.items() if names)
    return f"{problem}; known options of {listing}"


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


class Terminated(BaseException):
    """A termination signal, raised in the main thread so that every `finally:` of the scenario runs.

    A BaseException, as KeyboardInterrupt is, so that no `except Exception` swallows it.
    """

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


TERMINATING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_PARENT_AT_START = os.getppid()


def _raise_terminated(signum: int, frame: Any) -> None:
    # The first signal unwinds the scenario; a second one (the job's kill, then the parent's death)
    # must not cut its cleanup short. SIGKILL still ends it.
    for other in TERMINATING_SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    raise Terminated(signum)


def _die_with_parent() -> None:
    """Have Linux send SIGTERM when the parent dies, so a scenario never outlives what started it.

    Where prctl does not exist (not Linux), nothing is done. The kernel watches the parent thread that
    started this process: a parent must not start a scenario from a thread that ends before it.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return
    if prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        return
    if os.getppid() != _PARENT_AT_START:  # the parent died before the request: no one will send the signal
        os.kill(os.getpid(), signal.SIGTERM)


def run_scenario(main: Callable[[Sequence[str] | None], Any], argv: Sequence[str] | None = None,
                 die_with_parent: bool = True) -> int:
    """Run a scenario's main, turning library errors into one clear line and exit status 1.

    SIGTERM and SIGHUP (unless ignored, as under nohup) unwind the scenario like an exception, so servers
    are stopped and temporary files removed, then it exits with 128 + the signal's number, as a shell does.
    With `die_with_parent` the scenario also gets SIGTERM when its parent dies (Linux), so a killed
    Snakemake or shell takes its jobs with it. The inference server opts out: on a board it is started
    detached (`setsid nohup ... &`) by a shell that exits at once, and it has its own lifeline
    (`--stop-with-fd`) for when a client starts it.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    previous = {signum: signal.getsignal(signum) for signum in TERMINATING_SIGNALS}
    for signum, handler in previous.items():
        if handler == signal.SIG_DFL:
            signal.signal(signum, _raise_terminated)
    try:
        if die_with_parent:
            _die_with_parent()
        main(argv)
    except EdgeAIError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Terminated as terminated:
        print(f"error: terminated by signal {signal.Signals(terminated.signum).name}", file=sys.stderr)
        return 128 + terminated.signum
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
