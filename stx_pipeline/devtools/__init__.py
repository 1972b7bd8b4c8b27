"""Tools the tests and the benchmarks share: pipeline resources pointed at a simulator, `dagster dev` on a temporary
instance, a throw-away PostgreSQL server.

Development only: nothing in the pipeline imports this package (stx_pipeline_tests/test_layers.py checks it), so it
may start servers and depend on what a deployment never needs. It lives in `stx_pipeline` rather than in the test
package so that `bench/` imports no test module, and rather than in `bench/` so that the tests need no sys.path
change: both reach it as `stx_pipeline.devtools.*` from the editable install.
"""
