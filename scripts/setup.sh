#!/usr/bin/env bash
# Installs what fovea needs on a fresh Debian machine (root, Rust, Python 3 + pip). Safe to run again.
#   scripts/setup.sh          what the app needs
#   scripts/setup.sh --test   plus what the tests need
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/env.sh"

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3 python3-pip)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
command -v cc >/dev/null || need_apt+=(gcc)
if [ "${1:-}" = "--test" ]; then
  # The browser test drives Debian's Chromium over WebDriver.
  command -v chromium >/dev/null || need_apt+=(chromium)
  command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
  # The scale-out tests run a throwaway PostgreSQL cluster (and psql creates their databases).
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
  command -v psql >/dev/null || need_apt+=(postgresql-client)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> apt-get install ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if [ "${1:-}" = "--test" ]; then
  # The independent numpy reference of the network runs inside the test suite.
  python3 -c "import numpy" 2>/dev/null || { echo "==> pip install numpy"; python3 -m pip install --quiet numpy; }
  # Pillow decodes and resizes the sample photos for the independent end-to-end preprocessing check.
  python3 -c "import PIL" 2>/dev/null || { echo "==> pip install pillow"; python3 -m pip install --quiet pillow; }
  # ONNX Runtime checks that the exported ONNX graph computes what fovea's network does.
  python3 -c "import onnxruntime" 2>/dev/null || python3 -m pip install --quiet onnxruntime==1.32.0
  # Bochs (bochscpu) emulates a CPU with AVX-512, so the AVX-512 kernels are tested on machines without it. 0.3.1:
  # later wheels need glibc 2.38.
  python3 -c "import bochscpu" 2>/dev/null || { echo "==> pip install bochscpu-python"; python3 -m pip install --quiet bochscpu-python==0.3.1; }
  # moto's server is the S3-compatible store of the scale-out tests.
  command -v moto_server >/dev/null || { echo "==> pip install moto[server]"; python3 -m pip install --quiet "moto[server]==5.2.5"; }
fi
