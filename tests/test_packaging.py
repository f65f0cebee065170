"""Packaging: a board's light install, conda environment in step, the pins, the core's imports."""

import os
import re
import subprocess
import sys
import tomllib
import venv

import pytest
from packaging.specifiers import SpecifierSet
import yaml
from conftest import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _flatten(extra: str, seen=None) -> set[str]:
    """Requirement strings of an extra, following self-references like edge_ai_lib[a,b]."""
    seen = seen or set()
    result = set()
    for requirement in PYPROJECT["project"]["optional-dependencies"][extra]:
        match = re.fullmatch(r"edge_ai_lib\[(.+)\]", requirement)
        if match:
            for inner in match.group(1).split(","):
                if inner not in seen:
                    seen.add(inner)
                    result |= _flatten(inner, seen)
        else:
            result.add(requirement)
    return result


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


@pytest.mark.parametrize("path", ["environment.yml"])
def test_environment_yml_lists_exactly_the_pyproject_requirements(path):
    environment = yaml.safe_load((REPO / path).read_text())
    pip_section = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    listed = {r for r in pip_section if not r.startswith("-")}
    expected = set(PYPROJECT["project"]["dependencies"]) | _flatten("all") | _flatten("test")
    assert listed == expected, f"only in environment.yml: {listed - expected}; only in pyproject: {expected - listed}"
    python = next(d for d in environment["dependencies"] if isinstance(d, str) and d.startswith("python="))
    # The host's Python (3.11, that of the host extras' pins), inside what the package allows (3.9 to 3.12,
    # for boards).
    assert python == "python=3.11"
    assert SpecifierSet(PYPROJECT["project"]["requires-python"]).contains("3.11")


def test_constraints_pin_every_direct_requirement_exactly():
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.lower().replace("_", "-")] = version
    requirements = set(PYPROJECT["project"]["dependencies"]) | _flatten("all") | _flatten("test")
    missing = sorted(_name(r) for r in requirements if _name(r) not in pins)
    assert not missing, f"constraints.txt has no pin for {missing}"
    assert pins["torch"] == "2.13.0"  # the CPU build on local disk; an unpinned torch pulls CUDA


def test_core_imports_no_framework():
    code = ("import sys, edge_ai_lib.core.dataset, edge_ai_lib.core.model, edge_ai_lib.core.compiler, "
            "edge_ai_lib.core.runtime, edge_ai_lib.core.runtimeprotocol, edge_ai_lib.core.wire, "
            "edge_ai_lib.core.serving, edge_ai_lib.core.onnxconversion, "
            "edge_ai_lib.core.board, edge_ai_lib.core.timing, edge_ai_lib.core.quality, "
            "edge_ai_lib.core.provenance, edge_ai_lib.core.results, edge_ai_lib.core.measured_pass, "
            "edge_ai_lib.core.args; "
            "print(sorted(m for m in ('tensorflow', 'torch', 'tvm', 'keras', 'onnxruntime', 'sklearn') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_board_install_has_onnxruntime_but_no_training_framework(tmp_path):
    """A fresh venv with `.[onnxruntime]`: the runtime imports, TensorFlow and torch do not."""
    env_dir = tmp_path / "board-venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-c", str(REPO / "constraints.txt"),
         f"{REPO}[onnxruntime]"], capture_output=True, text=True, timeout=900,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert install.returncode == 0, install.stderr[-3000:]
    probe = ("import importlib.util as u, onnxruntime, edge_ai_lib.core.runtime; "
             "print([m for m in ('tensorflow', 'torch', 'keras', 'tvm') if u.find_spec(m)])")
    out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    for framework in ("tensorflow", "torch"):
        result = subprocess.run([str(python), "-c", f"import {framework}"], capture_output=True, text=True,
                                cwd=tmp_path)
        assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr
