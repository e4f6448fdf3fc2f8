#!/usr/bin/env bash
# Runs every test of fovea: installs what the tests need, fetches the real weights once, then the suites.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh --test
echo "==> building (workspace, all targets: one feature set, so nothing is compiled twice)"
cargo build --locked --workspace --all-targets
echo "==> fetching weights and sample photos into $FOVEA_HOME"
"$CARGO_TARGET_DIR/debug/fovea" fetch --samples
echo "==> starting PostgreSQL and an S3 server for the scale-out tests"
source scripts/services.sh
trap stop_test_services EXIT
start_test_services
echo "==> cargo test"
cargo test --locked --workspace --no-fail-fast 2>&1
