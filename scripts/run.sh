#!/usr/bin/env bash
# The main job: set up, fetch the real pretrained weights and sample photos, build, and classify the samples.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh
echo "==> building fovea (release; the first build takes several minutes)"
cargo build --release --locked -p fovea
fovea="$CARGO_TARGET_DIR/release/fovea"
"$fovea" fetch --samples
samples="$FOVEA_HOME/pip/scikit-image/skimage/data"
"$fovea" predict "$samples"/chelsea.png "$samples"/coffee.png "$samples"/rocket.jpg \
  "$samples"/motorcycle_left.png "$samples"/astronaut.png --top 3 "$@"
