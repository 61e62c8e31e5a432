"""Where replications run: local processes (the default) or an existing Dask cluster.

``--executor local`` (or ``GOVFLOW_EXECUTOR=local``) runs them in this machine's
processes; ``--executor dask://HOST:PORT`` sends them to a ``dask.distributed``
scheduler (``dask scheduler`` and ``dask worker``, or the compose profile ``dask``).
A replication is a pure function of (catalog, scenario, seed), so the results are the
same for a seed whatever runs them and however many workers there are; a worker lost
mid-run has its replications run again elsewhere by the scheduler.  A scheduler that
does not answer is an :class:`~services.core.errors.InputError` (one line, exit 2).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

from services.core.errors import InputError

T = TypeVar("T")
_DASK = re.compile(r"^dask://(?P<host>[^\s:/]+):(?P<port>\d{1,5})$")
#: Seconds to wait for a scheduler before giving up.
CONNECT_TIMEOUT_S = 10
#: Times the scheduler may run a replication again after its worker died.
RETRIES = 3


@dataclass(frozen=True)
class ExecutorSpec:
    """``local`` or a Dask scheduler's address."""

    kind: str  # "local" | "dask"
    address: str | None = None  # tcp://host:port
    workers: int = 1  # local processes (a cluster has its own)

    @property
    def text(self) -> str:
        return "local" if self.kind == "local" else f"dask://{self.address_host_port}"

    @property
    def address_host_port(self) -> str:
        return (self.address or "").removeprefix("tcp://")


def parse_executor(value: str | None, workers: int = 1, source: str = "--executor") -> ExecutorSpec:
    """``local`` (or nothing) / ``dask://HOST:PORT``; anything else is an input error.
    ``workers``: the local processes."""
    if value is None or value.strip() in ("", "local"):
        return ExecutorSpec("local", workers=max(1, workers))
    match = _DASK.match(value.strip())
    if match is None or not 0 < int(match["port"]) < 65536:
        raise InputError(source, value, "expected local or dask://HOST:PORT")
    return ExecutorSpec("dask", f"tcp://{match['host']}:{match['port']}")


@lru_cache(maxsize=4)
def _client(address: str) -> Any:
    """One client per scheduler for the process (a plan's rounds reuse it)."""
    from distributed import Client

    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise InputError(
            "--executor",
            f"dask://{address.removeprefix('tcp://')}",
            f"no Dask scheduler answers there ({type(exc).__name__}: {exc}); start one "
            "with `dask scheduler` and `dask worker`, or use --executor local",
        ) from None


def run_all(
    spec: ExecutorSpec,
    function: Callable[..., T],
    jobs: Sequence[tuple[Any, ...]],
    *,
    shared: tuple[Any, ...] = (),
    progress: Callable[[int], None] | None = None,
) -> list[T]:
    """``function(*shared, *job)`` for every job, results in job order.

    ``shared`` (the catalog and the scenario) is sent to a cluster once, not with each
    job.  Locally the jobs run in ``spec.workers`` processes (in this one for 1)."""
    if spec.kind == "dask":
        return _run_on_dask(spec, function, jobs, shared, progress)
    results: dict[int, T] = {}
    workers = spec.workers
    if workers <= 1 or len(jobs) <= 1:
        for i, job in enumerate(jobs):
            results[i] = function(*shared, *job)
            if progress:
                progress(1)
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
            futures = {pool.submit(function, *shared, *job): i for i, job in enumerate(jobs)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                if progress:
                    progress(1)
    return [results[i] for i in range(len(jobs))]


def _run_on_dask(
    spec: ExecutorSpec,
    function: Callable[..., T],
    jobs: Sequence[tuple[Any, ...]],
    shared: tuple[Any, ...],
    progress: Callable[[int], None] | None,
) -> list[T]:
    from distributed import as_completed as dask_completed

    assert spec.address is not None
    client = _client(spec.address)
    # the shared inputs as tasks of their own, not scattered data: a task the cluster
    # loses with its worker is run again, scattered data would be gone for good
    sent = [client.submit(_identity, value, pure=False) for value in shared]
    futures = [client.submit(function, *sent, *job, pure=False, retries=RETRIES) for job in jobs]
    index = {future.key: i for i, future in enumerate(futures)}
    results: dict[int, T] = {}
    for future in dask_completed(futures, loop=client.loop):
        results[index[future.key]] = future.result()
        if progress:
            progress(1)
    return [results[i] for i in range(len(jobs))]


#: One process, here (the library default).
LOCAL = ExecutorSpec("local")


def _identity(value: T) -> T:
    return value
