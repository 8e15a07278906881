"""The optional extras of mmfuse, and how code uses one when it is there."""

import importlib

__all__ = ["EXTRAS", "import_optional"]

# Each extra of pyproject.toml's optional-dependencies, with the modules it
# installs.
EXTRAS = {
    "deep": ("torch", "skorch"),
    "plot": ("matplotlib",),
    "pandas": ("pandas",),
    "progress": ("tqdm",),
    "dask": ("dask", "distributed"),
    "accelerate": ("accelerate",),
}


def import_optional(module: str, name: str):
    """Return ``module.name`` when it imports (an optional extra), else None.

    For a module of an extra that may be missing (pandas, tqdm,
    :mod:`mmfuse.deep`); a module that is always installed is imported
    directly.

    Parameters
    ----------
    module : str
        The module's dotted name.
    name : str
        The attribute wanted from it.

    Returns
    -------
    attribute : object or None
        The attribute, or None when the module or the attribute is missing.

    Examples
    --------
    >>> from mmfuse.utils._optional import import_optional
    >>> import_optional("math", "pi") is not None, import_optional("nope", "x")
    (True, None)
    """
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None
