#!/usr/bin/env bash
# Build the local images the tests and the demo use (no registry is reachable). Idempotent.
set -euo pipefail
echo "[images] (placeholder until the fixture images land)" >&2
