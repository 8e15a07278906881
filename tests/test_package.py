"""What a new user meets first: the import, the licence, the torch advice."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import mmfuse

ROOT = Path(__file__).parents[1]
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
