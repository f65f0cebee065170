"""Command-line plumbing shared by every class: argument groups and loading classes by dotted path."""

from __future__ import annotations

import argparse
import difflib
import importlib
import inspect
import pkgutil
from typing import Any, Iterable

from edge_ai_lib.core.errors import ClassPathError


class ArgumentsMixin:
    """Gives a class `form_argparse`/`from_argparse`.

    Subclasses extend `form_argparse` by calling the base version and adding a group of their own,
    so that `-h` lists every argument grouped by the class that owns it.
    """

    arguments_title: str | None = None

    @classmethod
    def form_argparse(cls) -> tuple[argparse.ArgumentParser, argparse._ArgumentGroup]:
        parser = argparse.ArgumentParser(add_help=False)
        group = parser.add_argument_group(cls.arguments_title or f"{cls.__name__} arguments")
        return parser, group

    @classmethod
    def from_argparse(cls, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


def _closest(name: str, candidates: Iterable[str]) -> list[str]:
    return difflib.get_close_matches(name, sorted(set(candidates)), n=4, cutoff=0.5)


def _submodules(package_name: str) -> list[str]:
    try:
        package = importlib.import_module(package_name)
    except Exception:
        return []
    paths = getattr(package, "__path__", None)
    if not paths:
        return []
    return [f"{package_name}.{info.name}" for info in pkgutil.iter_modules(paths)]


def load_class(class_path: str, base: type | None = None) -> type:
    """Import and return the class named by a dotted path such as `pkg.module.ClassName`.

    A path that does not resolve raises ClassPathError naming the path and listing the
    closest existing modules or classes, so a typo can be fixed from the message alone.
    """
    if not class_path or "." not in class_path:
        raise ClassPathError(
            f"'{class_path}' is not a dotted class path: write it as package.module.ClassName, "
            "e.g. edge_ai_lib.datasets.digits.DigitsDataset"
        )
    module_name, _, class_name = class_path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = error.name or module_name
        if not module_name.startswith(missing) and missing != module_name:
            # The module exists but one of its own imports is missing: a missing package.
            raise ClassPathError(
                f"cannot load '{class_path}': it needs the package '{missing}', which is not "
                f"installed; install the matching extra (e.g. pip install 'edge_ai_lib[all]')"
            ) from error
        parent = missing.rpartition(".")[0]
        nearby = _closest(missing, _submodules(parent)) if parent else []
        hint = f"; modules nearby: {', '.join(nearby)}" if nearby else ""
        if not nearby and parent:
            existing = _submodules(parent)
            if existing:
                hint = f"; modules in {parent}: {', '.join(sorted(existing))}"
        raise ClassPathError(f"cannot load '{class_path}': no module named '{missing}'{hint}") from error
    cls = getattr(module, class_name, None)
    if cls is None or not inspect.isclass(cls):
        classes = [name for name, obj in vars(module).items() if inspect.isclass(obj)
                   and obj.__module__ == module.__name__]
        nearby = _closest(class_name, classes) or sorted(classes)
        hint = f"; classes in {module_name}: {', '.join(nearby)}" if nearby else ""
        raise ClassPathError(f"cannot load '{class_path}': {module_name} has no class '{class_name}'{hint}")
    if base is not None and not issubclass(cls, base):
        raise ClassPathError(
            f"'{class_path}' is a class but not a {base.__name__}: pass a subclass of "
            f"{base.__module__}.{base.__name__}"
        )
    return cls


def namespace_to_argv(parser: argparse.ArgumentParser, args: argparse.Namespace,
                      skip: tuple[str, ...] = ()) -> list[str]:
    """The command-line options of `parser` that give back the values in `args` (to pass them on),
    leaving out the destinations in `skip`."""
    argv: list[str] = []
    for action in parser._actions:
        if (not action.option_strings or action.dest == "help" or action.dest in skip
                or not hasattr(args, action.dest)):
            continue
        value = getattr(args, action.dest)
        option = action.option_strings[0]
        if isinstance(action, argparse.BooleanOptionalAction):
            argv.append(option if value else "--no-" + option[2:])
        elif isinstance(action, argparse._StoreTrueAction):
            if value:
                argv.append(option)
        elif isinstance(action, argparse._StoreFalseAction):
            if not value:
                argv.append(option)
        elif value is None:
            continue
        elif isinstance(value, (list, tuple)):
            if value:
                argv += [option, *map(str, value)]
        else:
            argv += [option, str(value)]
    return argv
