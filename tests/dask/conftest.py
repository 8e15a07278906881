"""A real Dask cluster for the tests of tests/dask: two worker processes.

One cluster for the whole folder (package scope): starting worker
processes takes seconds, and every test here reads the same cluster.
"""

import pytest
from distributed import Client, LocalCluster


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
