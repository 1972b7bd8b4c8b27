-- The DuckLake catalog lives beside Dagster's instance database on the same server.
CREATE DATABASE lake;
