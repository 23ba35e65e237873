#!/usr/bin/env bash
# Set up (or reuse) .venv, then lint and run the whole test suite. CI runs exactly this.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
export FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA
export ROS_LOG_DIR="${ROS_LOG_DIR:-$(mktemp -d)}"
.venv/bin/ruff check rcdepth_ros test launch setup.py
.venv/bin/python -m pytest "$@"
