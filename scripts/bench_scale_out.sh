#!/usr/bin/env bash
# Scale-out measurements (release build): correction propagation between replicas, classify throughput with one and
# two replicas, identify throughput with one and two workers, on a throwaway PostgreSQL and S3 server.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh --test >/dev/null
cargo build --release --locked -p fovea
export FOVEA_BIN="$CARGO_TARGET_DIR/release/fovea"
photos="$("$FOVEA_BIN" fetch --samples | sed -n 's/^samples: //p')"
source scripts/services.sh
trap stop_test_services EXIT
start_test_services
python3 scripts/bench_scale_out.py "$photos"
