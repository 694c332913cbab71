#!/usr/bin/env bash
# Smoke test of a built bundle: --version, then an export of the sample image with a
# random-init model, offscreen; checks that a PNG came out.
set -euo pipefail
BIN="${1:-dist/vitexplorer/vitexplorer}"
HERE="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$(mktemp -d)"
export QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1
"$BIN" --version
"$BIN" export "$HERE/resources/sample.png" -o "$OUT/smoke.png" \
    --model vit_tiny_patch16_224 --weights random --method rollout
python3 - "$OUT/smoke.png" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
assert data.startswith(b"\x89PNG") and len(data) > 10_000, "no figure came out"
print(f"smoke OK: {sys.argv[1]} ({len(data)} bytes)")
PY
