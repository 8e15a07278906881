"""Dask stays optional: without a Dask collection nothing imports it."""

import os
import subprocess
import sys
from pathlib import Path

import mmfuse

CODE = """
import sys
import numpy as np
import mmfuse, mmfuse.cca, mmfuse.fusion, mmfuse.__main__
from mmfuse.cca import GCCA, KCCA, MCCA
from mmfuse.datasets import make_multiview

X, _ = make_multiview(200, view_dims=[4, 5], random_state=0)
for est in (MCCA(blocks=[4, 5]), GCCA(blocks=[4, 5]),
            KCCA(blocks=[4, 5], approximation="nystroem", n_landmarks=20)):
    est.fit(X).transform(X)
imported = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed"))
print(imported)
"""


def _run(code):
    """Run ``code`` in a fresh interpreter that imports this mmfuse; its output."""
    env = {**os.environ, "PYTHONPATH": str(Path(mmfuse.__file__).parents[1])}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_nothing_imports_dask_without_a_dask_collection():
    assert _run(CODE) == "[]"


WITHOUT_DASK = """
import sys
for name in ("dask", "dask.array", "distributed"):
    sys.modules[name] = None  # as if the dask extra were not installed
from mmfuse.utils.discovery import all_estimators
print(sorted(name for name, _ in all_estimators() if "CCA" in name))
"""


def test_all_estimators_without_the_dask_extra():
    # mmfuse.cca._dask imports dask at its top: walking it raised
    # ModuleNotFoundError where the extra is not installed.
    assert _run(WITHOUT_DASK) == "['GCCA', 'KCCA', 'MCCA']"
