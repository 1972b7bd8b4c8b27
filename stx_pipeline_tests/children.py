"""Child processes in tests: the first line a child prints, waited for with a deadline that holds under load."""

from __future__ import annotations

import subprocess
import threading

# A cold Python start importing DuckDB, Arrow or Dagster takes about a second alone and tens of seconds on a
# loaded 2-core machine; the deadline only bounds a child that hangs, it is not a measure of speed.
STARTUP_DEADLINE_S = 120.0


def read_line(proc: subprocess.Popen[str], timeout_s: float = STARTUP_DEADLINE_S) -> str:
    """The next line `proc` prints on stdout (stripped). Fails, naming what the child wrote on stderr, when the child
    exits first or prints nothing for `timeout_s` (the child is killed then)."""
    assert proc.stdout is not None, "start the child with stdout=subprocess.PIPE"
    lines: list[str] = []
    # readline() blocks without a timeout; a thread lets the test give up on a hung child.
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout_s)
    if lines and lines[0]:
        return lines[0].strip()
    if reader.is_alive():
        proc.kill()
    proc.wait(timeout=30)
    stderr = proc.stderr.read() if proc.stderr is not None else "(stderr not captured)"
    state = "printed nothing" if not lines else "exited without a line"
    raise AssertionError(
        f"child {proc.args!r} {state} within {timeout_s:.0f}s (exit code {proc.returncode}); stderr:\n{stderr}"
    )
