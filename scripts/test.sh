#!/usr/bin/env bash
# Runs every test of fovea: installs what the tests need, fetches the real weights once, then the suites.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh --test
echo "==> fetching weights and sample photos into $FOVEA_HOME"
cargo run --locked -q -p fovea -- fetch --samples
echo "==> cargo test"
cargo test --locked --workspace 2>&1
