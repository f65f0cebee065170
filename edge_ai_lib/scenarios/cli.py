"""Shared command-line handling of the scenarios: the same run from flags or from a spec (data).

A scenario names the roles it needs (dataset, model, compiler, runtime, protocol, board) with the base
class of each, and declares its own options as `Argument`s. It can be called in two ways that give
the same `ScenarioRun`:

- the seed's command line: class paths as positionals, then every class's options as flags
  (`-h` after the class paths lists them, grouped by class);
- `--spec JSON` (or `--spec @FILE`): ``{"dataset": {"class": PATH, "args": {...}}, ...,
  "options": {...}}``, which is how the workflow and the boards pass settings: as data, never as
  shell words. Unknown keys are refused with the known ones listed.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import difflib
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator, Sequence

from edge_ai_lib.core.args import Argument, ArgumentsMixin, load_class
from edge_ai_lib.core.errors import ConfigurationError, EdgeAIError

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
VERBOSITY = Argument("verbosity", str, "INFO", "Log level", choices=LOG_LEVELS)


@dataclass(frozen=True)
class ClassArgument:
    """A class the scenario needs, by role; on the command line a positional dotted path (or, when
    `option`, a `--ROLE CLASS` option that may be left out)."""

    name: str
    base: type
    help: str
    option: bool = False


@dataclass(frozen=True)
class PlainArgument:
    """A positional of the seed's command line that is one of the scenario's options in a spec."""

    name: str
    help: str


REPORT_POSITIONALS = [PlainArgument("output", "Directory of the JSON result and the plots"),
                      PlainArgument("reportname", "Name of the report: prefix of every file written")]

EVALUATION_OPTIONS = (
    Argument("warmup", int, 10, "Warm-up calls after the cold first call, left out of the statistics"),
    Argument("max_samples", int, None, "Evaluate at most this many samples"),
    Argument("split", str, "validation", "Dataset split to evaluate"),
)


def check_evaluation_options(options: SimpleNamespace) -> None:
    if options.warmup < 0:
        raise ConfigurationError(f"--warmup must be 0 or more, got {options.warmup}")
    if options.max_samples is not None and options.max_samples < 1:
        raise ConfigurationError(f"--max-samples must be at least 1, got {options.max_samples}")


def _options_class(arguments: Sequence[Argument]) -> type:
    return type("Scenario", (ArgumentsMixin,), {"arguments": tuple(arguments),
                                                "arguments_title": "Scenario arguments"})


@dataclass
class ScenarioRun:
    """A scenario's classes with their settings and its own options, however they were given."""

    classes: dict[str, type]
    spec: dict[str, Any]
    options: SimpleNamespace = field(default_factory=SimpleNamespace)

    def settings(self, role: str) -> dict[str, Any]:
        return dict(self.spec[role].get("args") or {})

    def build(self, role: str, *context: Any, **extra: Any) -> Any:
        """An instance of the role's class from its settings; `context` are the constructor's leading
        positionals (the dataset...), `extra` settings the scenario adds itself."""
        return self.classes[role].from_settings({**self.settings(role), **extra}, *context)

    def class_path(self, role: str) -> str:
        return self.spec[role]["class"]


@contextlib.contextmanager
def framework_notices_silenced(active: bool) -> Iterator[None]:
    """Standard error (the file descriptor, not only sys.stderr) to /dev/null while `active`.

    Why: loading a class path for `-h` imports its framework, and TensorFlow's C++ start-up notices
    (oneDNN, absl) go straight to descriptor 2, whatever TF_CPP_MIN_LOG_LEVEL says, before the help.
    Only the import is silenced: an error loading the class is raised and printed after it.
    """
    if not active:
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def parse_scenario_arguments(description: str, positionals: Sequence[ClassArgument | PlainArgument],
                             options: Sequence[Argument] = (),
                             argv: Sequence[str] | None = None) -> ScenarioRun:
    """Parse a scenario's command line (see the module's docstring for the two forms)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    options = (*options, VERBOSITY)
    if argv and (argv[0] == "--spec" or argv[0].startswith("--spec=")):
        run = _from_spec(description, positionals, options, argv)
    else:
        run = _from_command_line(description, positionals, options, argv)
    logging.basicConfig(level=getattr(logging, run.options.verbosity),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run


def _load_spec(text: str) -> dict[str, Any]:
    source = "--spec"
    if text.startswith("@"):
        source = text[1:]
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigurationError(f"cannot read the spec file {source} ({error.strerror}): check the path "
                                     "after --spec @") from error
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigurationError(f"{source} is not valid JSON ({error}): pass a JSON object such as "
                                 '{"dataset": {"class": "...", "args": {}}, "options": {}}') from None
    if not isinstance(spec, dict):
        raise ConfigurationError(f"{source} must be a JSON object, not {type(spec).__name__}")
    return spec


def _from_spec(description: str, positionals, options, argv) -> ScenarioRun:
    parser = argparse.ArgumentParser(description=description, allow_abbrev=False)
    parser.add_argument("--spec", required=True, help="The run as JSON, or @FILE holding it")
    given = parser.parse_args(argv)
    spec = _load_spec(given.spec)
    roles = {p.name: p for p in positionals if isinstance(p, ClassArgument)}
    plain = [p.name for p in positionals if isinstance(p, PlainArgument)]
    unknown = sorted(set(spec) - set(roles) - {"options"})
    if unknown:
        raise ConfigurationError(f"the spec has no part '{unknown[0]}'; known: {', '.join([*roles, 'options'])}")
    classes = {}
    for role, wanted in roles.items():
        part = spec.get(role)
        if part is None:
            if wanted.option:
                continue
            raise ConfigurationError(f"the spec lacks its '{role}' part: give {{\"class\": ..., \"args\": {{...}}}}")
        if not isinstance(part, dict) or set(part) - {"class", "args"} or "class" not in part:
            raise ConfigurationError(f"the spec's '{role}' part must be {{\"class\": PATH, \"args\": {{...}}}}, "
                                     f"got {json.dumps(part)[:200]}")
        cls = load_class(part["class"], wanted.base)
        cls.settings_from(part.get("args") or {})  # unknown or mistyped arguments stop here, naming the class
        classes[role] = cls
    values = dict(spec.get("options") or {})
    own = _options_class([*options, *(Argument(name, str, help="") for name in plain)])
    settled = own.settings_from(values)
    return ScenarioRun(classes, spec, SimpleNamespace(**settled))


def _from_command_line(description: str, positionals, options, argv) -> ScenarioRun:
    class_arguments = [p for p in positionals if isinstance(p, ClassArgument)]
    # No abbreviations anywhere: `--num-thread` must be refused, not read as `--num-threads`.
    first = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for positional in class_arguments:
        if positional.option:
            first.add_argument(f"--{positional.name}")
        else:
            first.add_argument(positional.name, nargs="?")
    given, _ = first.parse_known_args([a for a in argv if a not in ("-h", "--help")])
    positional_parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for positional in positionals:
        if isinstance(positional, ClassArgument) and positional.option:
            positional_parser.add_argument(f"--{positional.name}", default=None, metavar="CLASS",
                                           help=positional.help)
        else:
            positional_parser.add_argument(positional.name, help=positional.help)
    classes: dict[str, type] = {}
    parents = [positional_parser]
    for positional in class_arguments:
        path = getattr(given, positional.name)
        if path is None:
            continue
        try:
            with framework_notices_silenced("-h" in argv or "--help" in argv):
                cls = load_class(path, positional.base)
        except EdgeAIError as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2)
        classes[positional.name] = cls
        parents.append(cls.form_argparse()[0])
    own = _options_class(options)
    own_parser, common = own.form_argparse()
    missing = [p.name for p in class_arguments if getattr(given, p.name) is None]
    more = (f"More options appear once the class paths are given ({', '.join(missing)} missing here): put -h "
            "after them to list every option of those classes. " if missing else "")
    full = argparse.ArgumentParser(description=description, parents=[*parents, own_parser], allow_abbrev=False,
                                   epilog=more + "Or give the whole run as data: --spec JSON (or --spec @FILE), "
                                          '{"ROLE": {"class": PATH, "args": {...}}, ..., "options": {...}} with the '
                                          "roles and options above (names with underscores).")
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
    spec: dict[str, Any] = {role: {"class": f"{cls.__module__}.{cls.__name__}",
                                   "args": _as_data(cls.argument_values(args))}
                            for role, cls in classes.items()}
    values = {name: getattr(args, name) for name in own.declared_arguments()}
    values.update({p.name: getattr(args, p.name) for p in positionals if isinstance(p, PlainArgument)})
    spec["options"] = _as_data(values)
    return ScenarioRun(classes, spec, SimpleNamespace(**values))


def _as_data(values: dict[str, Any]) -> dict[str, Any]:
    """Argument values as JSON-ready data (paths as strings), as a spec holds them."""
    return {name: (str(value) if isinstance(value, Path) else value) for name, value in values.items()}


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
