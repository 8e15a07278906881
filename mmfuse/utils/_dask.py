"""Dask, when it is there: recognise a Dask collection, run on a cluster.

Dask is an optional extra (``pip install 'mmfuse[dask]'``). Nothing here
imports it unless it is used: :func:`is_dask_collection` reads
``sys.modules``, since an object can only be a Dask collection if Dask has
been imported already, and :func:`on_dask_cluster` imports
``dask.distributed`` when it is called.
"""

import sys
import threading
from contextlib import contextmanager

__all__ = ["is_dask_collection", "on_dask_cluster"]

_INSTALL = "pip install 'mmfuse[dask]'"

# Seconds to wait for a scheduler (a refused connection is retried until
# then).
CONNECT_TIMEOUT = 10.0


def is_dask_collection(X) -> bool:
    """Whether ``X`` is a Dask collection (array, DataFrame), importing nothing.

    Parameters
    ----------
    X : object
        Any input.

    Returns
    -------
    answer : bool
        True for a Dask array or DataFrame.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfuse.utils._dask import is_dask_collection
    >>> is_dask_collection(np.zeros((2, 2)))
    False
    """
    dask = sys.modules.get("dask")
    return dask is not None and dask.is_dask_collection(X)


@contextmanager
def on_dask_cluster(address: str, *, timeout: float | None = None):
    """Run joblib's parallel loops on the Dask cluster at ``address``.

    Connects a ``dask.distributed.Client`` to the scheduler and sets
    ``joblib.parallel_config(backend="dask")`` for the duration; the client
    is closed on exit (the cluster keeps running).

    Parameters
    ----------
    address : str
        The scheduler's address, e.g. ``"tcp://10.0.0.1:8786"``.
    timeout : float, default=None
        Seconds to wait for the scheduler; None: ``CONNECT_TIMEOUT`` (10).

    Yields
    ------
    client : distributed.Client
        The connected client.

    Raises
    ------
    ImportError
        When ``dask.distributed`` is not installed.
    ValueError
        When no scheduler answers at ``address`` within ``timeout``, or it
        has no worker by then.
    """
    try:
        from distributed import Client
    except ImportError as exc:
        raise ImportError(
            f"running on a Dask cluster needs dask.distributed, which is not "
            f"installed: {_INSTALL}"
        ) from exc
    from joblib import parallel_config

    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    try:
        client = _connect(Client, address, timeout)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        raise ValueError(
            f"cannot reach a Dask scheduler at {address!r} within {timeout:g} s "
            f"({type(exc).__name__}: {exc}). Start one (`dask scheduler` and "
            f"`dask worker ADDRESS`, or dask.distributed.LocalCluster) and pass "
            f"the address it prints, e.g. tcp://127.0.0.1:8786."
        ) from exc
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError as exc:
        client.close()
        raise ValueError(
            f"the Dask scheduler at {address!r} has no worker after {timeout:g} "
            f"s, so nothing would run: start one (`dask worker {address}`), or "
            f"give the address of a cluster that has workers."
        ) from exc
    with client, parallel_config(backend="dask"):
        yield client


def _connect(Client, address, timeout):
    """``Client(address, timeout=timeout)``, given up after ``timeout`` too.

    distributed bounds the connection by ``timeout`` but not the handshake
    that follows: at a port where something answers that is no scheduler
    (its dashboard, 8787, for its 8786; an HTTP server) the client waited
    forever. It connects in a daemon thread, left behind if it hangs.
    """
    outcome = {}

    def connect():
        try:
            outcome["client"] = Client(address, timeout=timeout)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            outcome["error"] = exc

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout + 5.0)  # the connection's own timeout, then a margin
    if "error" in outcome:
        raise outcome["error"]
    if "client" not in outcome:
        raise TimeoutError(f"no scheduler handshake within {timeout + 5.0:g} s")
    return outcome["client"]
