# Shared settings for fovea's scripts (sourced, not run).
# Build outputs live outside the clone so fresh clones (and CI) rebuild incrementally.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fovea-target}"
export FOVEA_HOME="${FOVEA_HOME:-$HOME/.cache/fovea}"
# Debian's Python refuses plain `pip install` (PEP 668); fovea installs only into its own folders or user site.
export PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
