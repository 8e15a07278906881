"""Tests on a real Dask cluster (a package, so that its conftest is not
confused with tests/cca/conftest.py when both folders are run)."""
