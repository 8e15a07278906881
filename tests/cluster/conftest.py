"""A real Dask cluster for the tests of tests/cluster: two worker processes.

One cluster for the whole folder (package scope): starting worker
processes takes seconds, and every test here reads the same cluster.
"""

import pytest
from distributed import Client, LocalCluster
from threadpoolctl import threadpool_limits


@pytest.fixture(scope="package")
def client():
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            memory_limit="2GiB",
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Run the in-memory fits on one BLAS thread, as the workers do.

    Dask's nanny starts workers with OMP_NUM_THREADS=1; the local fits of
    small matrices gain nothing from more threads and stall on a busy
    machine (see tests/cca/conftest.py).
    """
    with threadpool_limits(1):
        yield
