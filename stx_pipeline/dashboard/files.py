"""File output: atomic replacement and the chart library shipped beside the page."""

from __future__ import annotations

import contextlib
import filecmp
import os
import tempfile
from pathlib import Path

# The partial plotly.js bundle (scatter, bar, heatmap and a few more; no 3D, maps or gl) checked in beside this
# module: vendor/README.md says where it comes from; test_dashboard_page checks its hash.
PLOTLY_JS = "plotly-cartesian.min.js"
PLOTLY_VERSION = "4.1.1"
PLOTLY_SHA256 = "79542150855a52c567260e3137095dbe2b744e6d702a5cabe67da246942fba7a"
VENDOR_DIR = Path(__file__).with_name("vendor")


def plotly_js_source() -> Path:
    """The vendored plotly.js bundle (npm plotly.js-cartesian-dist-min, PLOTLY_VERSION)."""
    path = VENDOR_DIR / PLOTLY_JS
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: the package was installed without its vendored chart library")
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
    """Copy the vendored plotly.js bundle into assets_dir unless an identical copy is already there."""
    source = plotly_js_source()
    target = assets_dir / PLOTLY_JS
    assets_dir.mkdir(parents=True, exist_ok=True)
    if not (target.is_file() and filecmp.cmp(source, target, shallow=False)):
        atomic_write_bytes(target, source.read_bytes())
    return target
