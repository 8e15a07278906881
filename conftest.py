"""Collection rules for the whole suite (doctests of the package included)."""

from importlib.util import find_spec

import pytest

# mmfuse.deep needs the 'deep' extra; without torch its modules are not
# collected (the rest of the suite still runs).
collect_ignore_glob = []
if find_spec("torch") is None or find_spec("skorch") is None:
    collect_ignore_glob += ["mmfuse/deep/*", "tests/deep/*"]
collect_ignore = ["setup.py"]


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Train the suite's tiny nets on one torch thread.

    They gain nothing from more, and on a busy machine extra threads stall
    (the common checks of the deep estimators ran about 5x slower).
    """
    if find_spec("torch") is None:
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
