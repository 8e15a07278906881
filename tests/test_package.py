"""What a new user meets first: the import, the licence, the torch advice."""

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import mmfuse
from mmfuse import _blocks

ROOT = Path(__file__).parents[1]
PACKAGE = Path(mmfuse.__file__).parent
# Subprocesses import the mmfuse under test, not another installed copy.
ENV = {**os.environ, "PYTHONPATH": str(Path(mmfuse.__file__).parents[1])}


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], env=ENV, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_subpackages_load_on_first_use_without_torch():
    out = _run(
        "import sys, mmfuse\n"
        "print('torch' in sys.modules, 'mmfuse.cca' in sys.modules)\n"
        "print(mmfuse.cca.MCCA.__name__, mmfuse.fusion.compare_fusion.__name__)\n"
        "print('torch' in sys.modules)\n"
    )
    assert out.split() == ["False", "False", "MCCA", "compare_fusion", "False"]


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mmfuse.nope  # noqa: B018
    assert {"cca", "deep", "fusion", "datasets"} <= set(dir(mmfuse))


def test_deep_without_torch_points_to_the_readme_section():
    out = _run(
        "import sys, mmfuse\n"
        "sys.modules['torch'] = sys.modules['skorch'] = None  # not installed\n"
        "try:\n"
        "    import mmfuse.deep\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    assert "download.pytorch.org/whl/cpu" in out
    section = out.split("README.md, '")[1].split("'")[0]
    assert f"### {section}\n" in (ROOT / "README.md").read_text()


def test_licence_file_matches_the_declared_licence():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "BSD-3-Clause"
    assert project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("BSD 3-Clause License")


# --- the import graph: what each module offers the others ----------------------

# Its names are scikit-learn's private names, kept under scikit-learn's own
# spelling so that each use shows it is scikit-learn's private API; this
# module is the one place that imports them (STYLE §5).
COMPAT = "mmfuse.utils._compat"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package(module: str) -> str:
    """The subpackage of a module; a module of mmfuse's top level is its own."""
    parent = module.rpartition(".")[0]
    return module if parent in ("", "mmfuse") else parent


def _imports_from_mmfuse(path: Path):
    """``(module, name)`` of each ``from mmfuse... import name`` in a file."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "mmfuse"
        ):
            for alias in node.names:
                yield node.module, alias.name


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def test_blocks_all_lists_what_the_other_modules_import():
    imported = {
        name
        for module, path in MODULES.items()
        if module != "mmfuse._blocks"
        for source, name in _imports_from_mmfuse(path)
        if source == "mmfuse._blocks"
    }
    assert sorted(_blocks.__all__) == sorted(imported)


@pytest.mark.parametrize("module", list(MODULES))
def test_no_private_name_is_imported_across_packages(module):
    crossing = [
        f"{source}.{name}"
        for source, name in _imports_from_mmfuse(MODULES[module])
        if name.startswith("_")
        and source != COMPAT
        and _package(source) != _package(module)
    ]
    assert crossing == []
