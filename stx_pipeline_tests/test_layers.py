"""Who may import whom: the pipeline never imports its development tools, the benchmarks never import the tests."""

from __future__ import annotations

import ast
from pathlib import Path

import stx_pipeline
from stx_pipeline_tests.conftest import PROJECT_ROOT

PACKAGE = Path(stx_pipeline.__file__).parent


def imported_modules(source: Path) -> set[str]:
    """Every module `source` imports, at any depth (function-level imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def offenders(sources: list[Path], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    found = {}
    for source in sources:
        bad = sorted(m for m in imported_modules(source) if m.startswith(forbidden))
        if bad:
            found[str(source.relative_to(PROJECT_ROOT))] = bad
    return found


def test_the_pipeline_imports_neither_devtools_nor_tests() -> None:
    pipeline = [p for p in PACKAGE.rglob("*.py") if "devtools" not in p.relative_to(PACKAGE).parts]
    assert len(pipeline) > 20  # the scan saw the package
    assert offenders(pipeline, ("stx_pipeline.devtools", "stx_pipeline_tests")) == {}


def test_devtools_and_benchmarks_import_no_test_module() -> None:
    sources = [*(PACKAGE / "devtools").rglob("*.py"), *(PROJECT_ROOT / "bench").glob("*.py")]
    assert any(p.name == "bench_ingest.py" for p in sources)
    assert offenders(sources, ("stx_pipeline_tests", "pytest")) == {}
