"""Re-vendor the response schemas the conformance tests use from the real API's `openapi.yaml`.

    git -C <clone of hirosystems/stacks-blockchain-api> show 759c4a586b3f0cba330426a525d543d7d8fa2d9f:openapi.yaml \
        > /tmp/openapi.yaml
    .venv/bin/python -m stx_pipeline_tests.schemas.vendor_openapi /tmp/openapi.yaml

Keeps, for each path the pipeline calls, the GET operation's `responses` exactly as published (no rewriting), and
writes them to `hiro_openapi_subset.json` beside this file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

SOURCE_REPO = "hirosystems/stacks-blockchain-api"
SOURCE_PATH = "openapi.yaml"
SOURCE_COMMIT = "759c4a586b3f0cba330426a525d543d7d8fa2d9f"  # main; openapi.yaml identical at tag v9.0.2
# The paths as the spec spells them (the two list routes end in "/": fastify prefixes).
PATHS = (
    "/extended/v3/transactions",
    "/extended/v2/burn-blocks/",
    "/extended/v2/burn-blocks/{height_or_hash}",
    "/extended/v2/burn-blocks/{height_or_hash}/blocks",
    "/extended/v2/blocks/",
    "/extended/v2/blocks/{height_or_hash}",
    "/extended/v2/blocks/by-block-time/{timestamp}",
)
OUTPUT = Path(__file__).with_name("hiro_openapi_subset.json")


def subset(spec: dict) -> dict:
    return {
        "x-vendored-from": {"repo": SOURCE_REPO, "path": SOURCE_PATH, "commit": SOURCE_COMMIT},
        "openapi": spec["openapi"],
        "info": {"title": spec["info"]["title"], "version": spec["info"]["version"]},
        "paths": {path: {"get": {"responses": spec["paths"][path]["get"]["responses"]}} for path in PATHS},
    }


def main(source: str) -> None:
    spec = yaml.safe_load(Path(source).read_text())
    OUTPUT.write_text(json.dumps(subset(spec), indent=1) + "\n")
    print(f"wrote {OUTPUT} ({len(PATHS)} paths, API version {spec['info']['version']})")


if __name__ == "__main__":
    main(sys.argv[1])
