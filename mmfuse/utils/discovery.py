"""Find the public estimators of mmfuse (used by the common tests)."""

import importlib
import inspect
import pkgutil
from importlib.util import find_spec

from sklearn.base import BaseEstimator

import mmfuse
from mmfuse.utils._optional import EXTRAS

__all__ = ["all_estimators"]

# Subpackages and modules that need an optional extra, with the modules they
# import (mmfuse.cca._dask imports dask at its top).
_OPTIONAL = {"mmfuse.deep": EXTRAS["deep"], "mmfuse.cca._dask": ("dask",)}


def all_estimators() -> list[tuple[str, type]]:
    """List the public estimator classes of mmfuse.

    Walks every module of the package (skipping subpackages and modules
    whose optional dependency is not installed) and keeps the classes that derive from
    :class:`~sklearn.base.BaseEstimator`, are exported under a public name
    and are not abstract.

    Returns
    -------
    estimators : list of (name, class) tuples
        Sorted by name, each class once.

    Examples
    --------
    >>> from mmfuse.utils.discovery import all_estimators
    >>> names = [name for name, _ in all_estimators()]
    >>> "ModalitySelector" in names
    True
    """
    found = {}
    for info in pkgutil.walk_packages(mmfuse.__path__, prefix="mmfuse."):
        if any(
            info.name.startswith(package)
            and any(find_spec(module) is None for module in modules)
            for package, modules in _OPTIONAL.items()
        ):
            continue
        if ".tests" in info.name or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(obj, BaseEstimator)
                and obj.__module__.startswith("mmfuse.")
                and not name.startswith("_")
                and not inspect.isabstract(obj)
            ):
                found[name] = obj
    return sorted(found.items())
