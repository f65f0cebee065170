"""Command-line plumbing shared by every class: argument groups and loading classes by dotted path."""

from __future__ import annotations

import argparse
import ast
import difflib
import importlib
import importlib.util
import inspect
import pkgutil
from pathlib import Path
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
        # No abbreviations: a misspelt option must be refused, not taken for the option it starts.
        parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
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


def argument_names(cls: type) -> list[str]:
    """The names of a class's options as a config writes them: `--num-threads` is `num_threads`.

    Negated forms (`--no-per-channel`) are left out: a boolean is written `per_channel: false`.
    """
    names = set()
    for action in cls.form_argparse()[0]._actions:
        negatable = isinstance(action, argparse.BooleanOptionalAction)
        for option in action.option_strings:
            if option.startswith("--") and not (negatable and option.startswith("--no-")):
                names.add(option[2:].replace("-", "_"))
    return sorted(names)


def _module_spec(module_name: str, class_path: str | None):
    """The import spec of a module, found by importing its parent packages only (never the module)."""
    of = f" of '{class_path}'" if class_path else ""
    parent = None
    parts = module_name.split(".")
    for depth in range(1, len(parts) + 1):
        name = ".".join(parts[:depth])
        if parent is not None and parent.submodule_search_locations is None:
            raise ClassPathError(f"cannot find module '{module_name}'{of}: {parent.name} is a "
                                 f"module, not a package, so it has no '{parts[depth - 1]}'")
        try:
            spec = importlib.util.find_spec(name)
        except ImportError as error:
            raise ClassPathError(f"cannot find module '{module_name}'{of}: importing the package "
                                 f"'{name}' failed ({error})") from error
        if spec is None:
            if parent is None:
                existing = [info.name for info in pkgutil.iter_modules()]
                nearby = _closest(name, existing)
                hint = (f": did you mean {nearby[0]}?" if nearby else
                        ": install it, or put its directory on PYTHONPATH")
            else:
                existing = [f"{parent.name}.{info.name}"
                            for info in pkgutil.iter_modules(parent.submodule_search_locations)]
                nearby = _closest(name, existing)
                hint = (f": did you mean {nearby[0]}?" if nearby else
                        f"; modules in {parent.name}: {', '.join(sorted(existing)) or 'none'}")
            raise ClassPathError(f"cannot find module '{name}'{of}{hint}")
        parent = spec
    return spec


def _top_level_names(tree: ast.Module) -> set[str] | None:
    """Names a module binds at its top level, or None when they cannot be known without running it."""
    names: set[str] = set()
    statements = list(tree.body)
    while statements:
        node = statements.pop()
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    return None
                names.add(alias.asname or alias.name.partition(".")[0])
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for target in targets for n in ast.walk(target) if isinstance(n, ast.Name))
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                statements.extend(getattr(node, field, []))
    return None if "__getattr__" in names else names


def find_module_source(module_name: str, class_path: str | None = None) -> Path:
    """The file of a module, found without importing it (only its parent packages).

    A missing module raises ClassPathError naming the nearest existing one; `class_path`, when given,
    is the class path the module was read from, for the message.
    """
    spec = _module_spec(module_name, class_path)
    if spec.origin is None or not spec.has_location:
        raise ClassPathError(f"cannot find module '{module_name}'{f' of {class_path!r}' if class_path else ''}: "
                             "it is a namespace package without a file of its own; name a module inside it")
    return Path(spec.origin)


def find_class_source(class_path: str) -> Path:
    """The source file of the module of a dotted class path, found without importing that module.

    For classes whose module imports a framework at its top (the model wrappers): only the parent
    packages are imported. A missing module raises ClassPathError with the nearest existing names, and
    so does a module whose source does not define the class, as load_class would.
    """
    if not class_path or "." not in class_path:
        raise ClassPathError(
            f"'{class_path}' is not a dotted class path: write it as package.module.ClassName, "
            "e.g. edge_ai_lib.datasets.digits.DigitsDataset"
        )
    module_name, _, class_name = class_path.rpartition(".")
    source = find_module_source(module_name, class_path)
    if source.suffix != ".py":
        return source
    try:
        tree = ast.parse(source.read_bytes(), str(source))
    except (OSError, SyntaxError, ValueError):
        return source  # importing it will say what is wrong, in the step that needs it
    names = _top_level_names(tree)
    if names is not None and class_name not in names:
        classes = [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
        nearby = _closest(class_name, classes) or sorted(classes)
        hint = f"; classes in {module_name}: {', '.join(nearby)}" if nearby else ""
        raise ClassPathError(f"cannot load '{class_path}': {module_name} has no class '{class_name}'{hint}")
    return source


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
