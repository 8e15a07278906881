"""The public face: public names only, each with its numpydoc docstring.

A public module's ``__all__`` lists public names only, each defined.
Every public object has a numpydoc docstring, written out (STYLE §10).
The public objects are the classes and functions in the ``__all__`` of each
public module of mmfuse (a module path with no ``_``-prefixed part:
``mmfuse``, ``mmfuse.cca``, ``mmfuse.fusion``…), with their public methods
defined in mmfuse (not those inherited from scikit-learn or skorch).

Checks of :func:`numpydoc.validate.validate` enforced, by code:

- ``GL08``: the object has a docstring;
- ``PR01``, ``PR02``, ``PR03``: its Parameters section documents every
  parameter of the signature (of ``__init__`` for a class), no other, in the
  signature's order;
- ``EX01``: it has an Examples section (classes and functions; a method is
  shown by its class's examples, as in scikit-learn).

The other codes are not enforced: they check wording (``SS05``, ``PR08``),
ask for sections STYLE does not require of every object (``SA01`` See Also,
``ES01`` extended summary), or disagree with the project's style (``RT02``:
a Returns entry names the value before its type).

Besides, the docstring is written in the source as the object's literal
docstring (not assembled from templates into ``__doc__``), and it names no
private module (``_x.py``, ``mmfuse.x._y``), which a reader of the
documentation cannot open.
"""

import ast
import importlib
import inspect
import pkgutil
import re
import textwrap

import pytest
from numpydoc.validate import validate

import mmfuse

ENFORCED = {"GL08", "PR01", "PR02", "PR03", "EX01"}
ENFORCED_ON_METHODS = ENFORCED - {"EX01"}
PRIVATE_MODULE = re.compile(r"\b_\w+\.py\b|\bmmfuse(?:\.\w+)*\._\w+")


def _public_modules():
    yield mmfuse
    for info in pkgutil.walk_packages(mmfuse.__path__, prefix="mmfuse."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            yield importlib.import_module(info.name)


PUBLIC_MODULES = list(_public_modules())


def _public_objects():
    """``{public path: object}`` of every class and function in an ``__all__``."""
    found = {}
    for module in PUBLIC_MODULES:
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                if obj not in found.values():  # re-exported: checked once
                    found[f"{module.__name__}.{name}"] = obj
    return found


def _methods(cls):
    """Names of the public methods of ``cls`` defined in mmfuse."""
    return [
        name
        for name in dir(cls)
        if not name.startswith("_")
        and inspect.isfunction(inspect.unwrap(getattr(cls, name)))
        and getattr(cls, name).__module__.startswith("mmfuse")
    ]


PUBLIC = _public_objects()


def test_every_public_module_is_walked():
    assert {
        "mmfuse",
        "mmfuse.cca",
        "mmfuse.datasets",
        "mmfuse.deep",
        "mmfuse.fusion",
        "mmfuse.metrics",
        "mmfuse.utils.discovery",
    } <= {module.__name__ for module in PUBLIC_MODULES}


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda module: module.__name__)
def test_public_all_lists_public_names_only(module):
    names = getattr(module, "__all__", [])
    assert [name for name in names if name.startswith("_")] == []
    assert [name for name in names if not hasattr(module, name)] == []


@pytest.mark.parametrize("path", PUBLIC)
def test_numpydoc_sections(path):
    obj = PUBLIC[path]
    targets = {path: ENFORCED}
    if inspect.isclass(obj):
        targets |= {f"{path}.{name}": ENFORCED_ON_METHODS for name in _methods(obj)}
    errors = [
        f"{target}: {code} {message}"
        for target, codes in targets.items()
        for code, message in validate(target)["errors"]
        if code in codes
    ]
    assert errors == []


@pytest.mark.parametrize("path", PUBLIC)
def test_docstring_is_written_out(path):
    obj = PUBLIC[path]
    node = ast.parse(textwrap.dedent(inspect.getsource(obj))).body[0]
    literal = ast.get_docstring(node)
    assert literal is not None, f"{path} has no docstring literal in its source"
    assert literal == inspect.getdoc(obj), f"{path}.__doc__ is changed afterwards"


@pytest.mark.parametrize("path", PUBLIC)
def test_docstring_names_no_private_module(path):
    obj = PUBLIC[path]
    documented = [obj]
    if inspect.isclass(obj):
        documented += [getattr(obj, name) for name in _methods(obj)]
    found = [
        match.group()
        for item in documented
        for match in PRIVATE_MODULE.finditer(inspect.getdoc(item) or "")
    ]
    assert found == []
