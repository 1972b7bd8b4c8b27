"""Test tiers that mean what they say: a test that starts a process is marked `slow`, and this plugin checks it.

`make test-fast` (`pytest -m "not slow"`) is the in-process tier: the simulator on a thread, DuckDB files, a temporary
Dagster instance, all inside the pytest process. Anything that starts a process (`dagster dev`, the `dagster` or
`stx-pipeline` CLI, PostgreSQL, a second Python holding a DuckDB lock, node, a browser) belongs to `make test`.
Python's audit events (PEP 578) see every process start in this interpreter; a test that is not marked `slow` and
starts one, in its setup or its body, fails and names what it started. Loaded by conftest's `pytest_plugins`.

Two exceptions, started by libraries rather than by the test, and not counted: Dagster mirrors a run's captured
stdout/stderr through `tail -F` and an orphan watcher (dagster/_core/execution/compute_logs.py) for an in-process
run on a persistent instance; and the standard library's `platform.architecture()` asks `file -b` about the
interpreter the first time a library calls it at import (which test imports it first depends on the order).

The mark also covers long in-process scenarios (many days under faults, wall-clock rate measurements): those are
marked by hand, the plugin only checks processes.
"""

from __future__ import annotations

import sys
from collections.abc import Generator
from typing import Any

import pytest

# The audit events of every way Python starts a process (subprocess, os.system/popen, os.spawn*, multiprocessing).
PROCESS_EVENTS = frozenset({"subprocess.Popen", "os.posix_spawn", "os.system", "os.fork", "os.forkpty"})

_started: list[str] | None = None  # the processes the current test started; None between tests
_process_fixtures: set[str] = set()  # fixtures whose setup started a process (a shared server, a browser)


def _describe(event: str, args: tuple[Any, ...]) -> str:
    if event == "subprocess.Popen":  # (executable, args, cwd, env)
        argv = args[1]
        words = [str(argv)] if isinstance(argv, str | bytes) else [str(a) for a in argv or ()]
        return " ".join(words)[:160]
    if event in ("os.posix_spawn", "os.system"):
        return f"{event}: {str(args[0])[:160]}"
    return event


# Files whose process starts are a library's, not the test's (see the module docstring).
LIBRARY_STARTERS = ("/".join(("dagster", "_core", "execution", "compute_logs.py")), "/platform.py")


def _started_by_a_library() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename.endswith(LIBRARY_STARTERS):
            return True
        frame = frame.f_back
    return False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _started is not None and event in PROCESS_EVENTS and not _started_by_a_library():
        _started.append(_describe(event, args))


sys.addaudithook(_audit)  # cannot be removed; it only records while a test's setup or body runs


def _watch(item: pytest.Item, phase: str) -> Generator[None, object, object]:
    global _started
    _started = []
    try:
        result = yield
    finally:
        started, _started = _started, None
    if item.get_closest_marker("slow") is None:
        # A session- or module-scoped fixture starts its process once; every test using it depends on that process.
        shared = sorted(_process_fixtures.intersection(getattr(item, "fixturenames", ())))
        if started or shared:
            what = "; ".join(started[:3]) or "through the fixture(s) " + ", ".join(shared)
            raise pytest.fail.Exception(
                f"{item.nodeid} starts a process in its {phase} but is not marked slow (make test-fast is the "
                f"in-process tier): mark it @pytest.mark.slow. Started: {what}",
                pytrace=False,
            )
    return result


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, object, object]:
    before = len(_started) if _started is not None else 0
    result = yield
    if _started is not None and len(_started) > before:
        _process_fixtures.add(fixturedef.argname)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _watch(item, "setup"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _watch(item, "body"))
