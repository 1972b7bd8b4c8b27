"""File output: atomic replacement and the chart library shipped beside the page."""

from __future__ import annotations

import contextlib
import filecmp
import importlib.util
import os
import tempfile
from functools import cache
from pathlib import Path

PLOTLY_JS = "plotly.min.js"


@cache
def plotly_js_source() -> Path:
    """The plotly.min.js bundled in the plotly wheel.

    find_spec locates the package without importing it (importing plotly costs seconds).
    """
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the plotly package (for its bundled plotly.min.js) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "package_data" / PLOTLY_JS
    if not path.is_file():
        raise RuntimeError(f"{path} is missing from the plotly package")
    return path


def atomic_write_bytes(path: Path, payload: bytes) -> int:
    """Write via a temp file in the same directory then os.replace: readers see old or new, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a web server or another user must read the page
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return len(payload)


def ensure_plotly(assets_dir: Path) -> Path:
    """Copy plotly.min.js into assets_dir unless an identical copy is already there."""
    source = plotly_js_source()
    target = assets_dir / PLOTLY_JS
    assets_dir.mkdir(parents=True, exist_ok=True)
    if not (target.is_file() and filecmp.cmp(source, target, shallow=False)):
        atomic_write_bytes(target, source.read_bytes())
    return target
