"""Arguments declared once per class, and loading classes by dotted path.

A class lists its own arguments in `arguments` (a tuple of `Argument`). From that one declaration come
its command-line options (`form_argparse`, grouped by the class that declares them), its defaults,
and its construction from a dict such as a config slice (`from_settings`, which refuses unknown keys
naming the known ones). Instances get one attribute per argument.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import importlib
import importlib.util
import inspect
import json
import math
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from edge_ai_lib.core.errors import ClassPathError, ConfigurationError

REQUIRED = object()
"""Default of an argument that has none: it must be given."""


@dataclass(frozen=True)
class Argument:
    """One argument of a class: its name (a Python identifier; the option is --name-with-dashes),
    its type (int, float, str, bool, Path, or dict for a JSON object), default, help, allowed values,
    and whether it takes a list.

    A dict argument takes a mapping from a spec or a config, and a JSON object on the command line
    (`--run '{"board": "local"}'`).
    """

    name: str
    type: Callable[[Any], Any] = str
    default: Any = REQUIRED
    help: str = ""
    choices: tuple[Any, ...] | None = None
    many: bool = False
    attribute: str | None = None  # where `configure` keeps the value, when not under `name`

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def add_to(self, group) -> None:
        text = self.help
        if not self.required and self.default is not None:
            shown = " ".join(map(str, self.default)) if isinstance(self.default, (list, tuple)) else self.default
            text += f" (default: {shown})".replace("%", "%%")
        kwargs: dict[str, Any] = {"dest": self.name, "help": text,
                                  "default": None if self.required else self.default}
        if self.type is bool:
            group.add_argument(self.option, action=argparse.BooleanOptionalAction, **kwargs)
            return
        kwargs.update(type=self.type, required=self.required)
        if self.type is dict:
            kwargs.update(type=self._json_object_option, metavar="JSON")
        if self.choices is not None:
            kwargs["choices"] = self.choices
        if self.many:
            kwargs["nargs"] = "*"
        group.add_argument(self.option, **kwargs)

    def _json_object_option(self, text: str) -> dict[str, Any]:
        """A dict argument's command-line value: a JSON object, or argparse's one-line error."""
        try:
            return json_object(text)
        except ConfigurationError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    def convert(self, value: Any, owner: str) -> Any:
        """A value from a dict (JSON, YAML) checked and converted as the command line would."""
        if value is None:
            if self.default is None:
                return None
            raise ConfigurationError(f"{owner} argument {self.name}: a value is needed, got null")
        if self.many:
            if not isinstance(value, (list, tuple)):
                value = [value]
            return [self._one(item, owner) for item in value]
        return self._one(value, owner)

    def _one(self, value: Any, owner: str) -> Any:
        expected = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
                    Path: "a path", dict: "a JSON object"}.get(self.type, self.type.__name__)
        if self.type is dict:
            if isinstance(value, str):
                value = json_object(value, f"{owner} argument {self.name}")
            if not isinstance(value, Mapping):
                raise ConfigurationError(f"{owner} argument {self.name}: expected {expected} such as "
                                         f'{{"key": "value"}}, got {value!r}')
            return dict(value)
        if self.type is bool:
            ok = isinstance(value, bool)
        elif self.type is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif self.type is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        elif self.type in (str, Path):
            ok = isinstance(value, (str, Path))
        else:
            ok = True
        if not ok:
            raise ConfigurationError(f"{owner} argument {self.name}: expected {expected}, got {value!r}")
        try:
            converted = self.type(value)
        except (TypeError, ValueError) as error:
            raise ConfigurationError(f"{owner} argument {self.name}: {value!r} is not {expected} ({error})") \
                from None
        if self.choices is not None and converted not in self.choices:
            raise ConfigurationError(f"{owner} argument {self.name}: {value!r} is not one of "
                                     f"{', '.join(map(str, self.choices))}")
        return converted


def json_object(text: str, what: str = "") -> dict[str, Any]:
    """`text` parsed as a JSON object; anything else is one ConfigurationError naming `what`."""
    what = f"{what}: " if what else ""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigurationError(f"{what}{text[:200]!r} is not valid JSON ({error.msg} at character "
                                 f"{error.pos}): pass a JSON object such as '{{\"key\": \"value\"}}', "
                                 "quoted for the shell") from None
    if not isinstance(value, dict):
        raise ConfigurationError(f"{what}expected a JSON object such as '{{\"key\": \"value\"}}', got "
                                 f"{type(value).__name__} {text[:200]!r}")
    return value


class ArgumentsMixin:
    """Gives a class its arguments from one declaration: options, defaults, construction from a dict.

    Subclasses add their own `arguments`; those of the base classes come first. A subclass may
    redeclare a base argument (same name) to change its default or help. `__init__` receives the
    arguments as keyword arguments and hands them to `configure`, which checks them and sets one
    attribute per argument.
    """

    arguments_title: str | None = None
    arguments: tuple[Argument, ...] = ()

    @classmethod
    def declared_arguments(cls) -> dict[str, Argument]:
        """Every argument of the class, base classes' first, by name."""
        declared: dict[str, Argument] = {}
        for klass in reversed(cls.__mro__):
            for argument in vars(klass).get("arguments", ()):
                declared[argument.name] = argument
        return declared

    @classmethod
    def settings_from(cls, values: Mapping[str, Any]) -> dict[str, Any]:
        """`values` checked against the declaration: unknown names refused (the known ones listed),
        types converted, defaults filled in, missing required arguments named."""
        declared = cls.declared_arguments()
        owner = cls.__name__
        unknown = [name for name in values if name not in declared]
        if unknown:
            known = sorted(declared)
            name = unknown[0]
            nearby = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
            guess = f" (did you mean {nearby[0]}?)" if nearby else ""
            raise ConfigurationError(f"{owner} has no argument '{name}'; known: {', '.join(known)}{guess}")
        settings = {}
        for name, argument in declared.items():
            if name in values:
                settings[name] = argument.convert(values[name], owner)
            elif argument.required:
                raise ConfigurationError(f"{owner} needs its argument {name} ({argument.option} on the command "
                                         f"line): {argument.help}")
            else:
                settings[name] = list(argument.default) if isinstance(argument.default, list) else argument.default
        return settings

    def configure(self, settings: Mapping[str, Any]) -> None:
        """Check `settings` (see `settings_from`) and keep each as an attribute of the same name."""
        declared = type(self).declared_arguments()
        for name, value in type(self).settings_from(settings).items():
            setattr(self, declared[name].attribute or name, value)

    def argument_settings(self) -> dict[str, Any]:
        """The instance's arguments as plain data (paths as strings): what recreates it with `from_settings`."""
        values = {name: getattr(self, argument.attribute or name)
                  for name, argument in type(self).declared_arguments().items()}
        return {name: (str(value) if isinstance(value, Path) else value) for name, value in values.items()}

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None, *context: Any) -> Any:
        """Construct from a dict of arguments (a config slice); `context` are the constructor's leading
        positional parameters (the dataset, the protocol...)."""
        return cls(*context, **dict(settings or {}))

    @classmethod
    def form_argparse(cls) -> tuple[argparse.ArgumentParser, Any]:
        """A parser (without -h) with one group per class that declares arguments, base classes first."""
        # No abbreviations: a misspelt option must be refused, not taken for the option it starts.
        parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
        group = None
        declared = cls.declared_arguments()
        placed: set[str] = set()
        for klass in reversed(cls.__mro__):
            own = [declared[a.name] for a in vars(klass).get("arguments", ()) if a.name not in placed]
            if not own:
                continue
            title = vars(klass).get("arguments_title") or f"{klass.__name__} arguments"
            group = parser.add_argument_group(title)
            for argument in own:
                argument.add_to(group)
                placed.add(argument.name)
        if group is None:
            group = parser.add_argument_group(cls.arguments_title or f"{cls.__name__} arguments")
        return parser, group

    @classmethod
    def from_argparse(cls, args: argparse.Namespace, *context: Any) -> Any:
        """Construct from a parsed command line (the parser of `form_argparse`), as the seed's classes do."""
        return cls.from_settings(cls.argument_values(args), *context)

    @classmethod
    def argument_values(cls, namespace: argparse.Namespace) -> dict[str, Any]:
        """This class's arguments out of a parsed command line."""
        return {name: getattr(namespace, name) for name in cls.declared_arguments() if hasattr(namespace, name)}


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
