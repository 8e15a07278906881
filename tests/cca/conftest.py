"""Fixtures of the CCA tests."""

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Run the CCA tests' small solves on one BLAS thread.

    Their matrices are tens of columns wide: extra threads gain nothing, and
    on a busy machine they stall (a grid search of MCCA ran about 15x
    slower). A test that wants more threads sets them itself.
    """
    with threadpool_limits(1):
        yield
