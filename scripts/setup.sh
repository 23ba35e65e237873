#!/usr/bin/env bash
# Create or reuse the project's virtual environment in .venv and install rcdepth_ros into it.
# Everything is pinned in requirements.txt; a stamp file makes a second run a no-op.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"
py="${PYTHON:-python3}"
stamp="$venv/.rcdepth-setup-stamp"
want="$(cat requirements.txt setup.py | sha256sum | cut -c1-16)"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/rcdepth" ]; then
  exit 0
fi
if ! "$py" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 13) else 1)'; then
  echo "setup: need CPython 3.10-3.13 (the ROS 2 Kilted wheels); found $("$py" --version)" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  # torch's CUDA build makes the venv about 6.5 GB; say so before pip runs out of disk half-way.
  free_kb="$(df -Pk "$root" | awk 'NR == 2 {print $4}')"
  if [ "$free_kb" -lt $((7 * 1024 * 1024)) ]; then
    echo "setup: .venv needs about 7 GB of disk, only $((free_kb / 1024)) MB are free here" >&2
    exit 1
  fi
  "$py" -m venv "$venv"
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
echo "setup: installing pinned requirements into .venv (first run takes a few minutes)" >&2
"$venv/bin/python" -m pip install -q -r requirements.txt
"$venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e .
echo "$want" > "$stamp"
echo "setup: .venv ready" >&2
