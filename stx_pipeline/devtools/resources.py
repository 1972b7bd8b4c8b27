"""The pipeline's resources pointed at a given API (the simulator) and DuckDB file, unpaced."""

from __future__ import annotations

from pathlib import Path


def pipeline_resources(sim_url: str, db: Path, **hiro_overrides: object) -> dict[str, object]:
    from stx_pipeline.resources import HiroApiResource, StorageResource

    hiro_config: dict[str, object] = {"base_url": sim_url, "requests_per_minute": 0, **hiro_overrides}
    return {"hiro": HiroApiResource(**hiro_config), "storage": StorageResource(duckdb_path=str(db))}
