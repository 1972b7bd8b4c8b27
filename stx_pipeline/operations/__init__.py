"""Operating the pipeline: backfills, progress, status. Fast paths avoid importing dagster."""
