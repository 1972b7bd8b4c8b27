"""Assets: wiring of the API client, storage and dashboard into Dagster."""
