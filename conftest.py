"""Collection rules for the whole suite (doctests of the package included)."""

from importlib.util import find_spec

# mmfuse.deep needs the 'deep' extra; without torch its modules are not
# collected (the rest of the suite still runs).
collect_ignore_glob = []
if find_spec("torch") is None or find_spec("skorch") is None:
    collect_ignore_glob += ["mmfuse/deep/*", "tests/deep/*"]
collect_ignore = ["setup.py"]
