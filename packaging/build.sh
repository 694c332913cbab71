#!/usr/bin/env bash
# Build the one-folder bundle into dist/vitexplorer and run its smoke test.
# Needs the app's dependencies and pyinstaller in the active Python environment.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m PyInstaller --noconfirm --clean --distpath dist --workpath build/pyinstaller \
    packaging/vitexplorer.spec
du -sh dist/vitexplorer
./packaging/smoke.sh dist/vitexplorer/vitexplorer
