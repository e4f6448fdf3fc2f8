#!/usr/bin/env bash
# The main job: set up, fetch the real pretrained weights and sample photos, build, import a few labelled
# samples and start the web app on the embedded default (SQLite + local files).
#   FOVEA_LISTEN (default 127.0.0.1:8080), FOVEA_DATA (default ~/.local/share/fovea) change where it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh
echo "==> building fovea (release; the first build takes several minutes)"
cargo build --release --locked -p fovea
fovea="$CARGO_TARGET_DIR/release/fovea"
"$fovea" fetch --samples
export FOVEA_DATA="${FOVEA_DATA:-$HOME/.local/share/fovea}"
photos="$FOVEA_HOME/pip/scikit-image/skimage/data"
seed="$FOVEA_HOME/sample-folder"
for pair in cat:chelsea.png coffee:coffee.png rocket:rocket.jpg motorcycle:motorcycle_left.png astronaut:astronaut.png; do
  mkdir -p "$seed/${pair%%:*}"
  cp -f "$photos/${pair#*:}" "$seed/${pair%%:*}/"
done
echo "==> importing sample photos into $FOVEA_DATA"
"$fovea" import --labelled "$seed"
echo "==> starting the web app (Ctrl+C stops it)"
exec "$fovea" serve --listen "${FOVEA_LISTEN:-127.0.0.1:8080}"
