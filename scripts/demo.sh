#!/usr/bin/env bash
# The README's main command: install everything, then run the lab demo (arguments go to `sidestep lab`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/sidestep lab "$@"
