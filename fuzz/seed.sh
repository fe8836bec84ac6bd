#!/usr/bin/env bash
# Seed corpora for the fuzz targets from the test fixtures (fuzz/corpus/ is not committed).
set -euo pipefail
cd "$(dirname "$0")"
fx=../tests/fixtures
mkdir -p corpus/dicom_loader corpus/raster_loader corpus/model_json corpus/weights_loader
# DICOM: every committed fixture under 64 kB (the 16x16 films, RLE crop, JPEG-LS, 12-bit JPEG,
# multi-frame, bare data sets, DICOMDIR and its images, truncated and garbage files).
find "$fx/dicom" -type f -size -64k ! -name '*.json' ! -name '*.md' | while read -r f; do
  cp "$f" "corpus/dicom_loader/$(echo "$f" | sed 's|.*/fixtures/dicom/||; s|/|_|g')"
done
cp "$fx"/raster/*.png "$fx"/raster/*.jpg corpus/raster_loader/
cp "$fx"/reference/model.json corpus/model_json/reference_model.json
cp ../weights/model.json corpus/model_json/shipped_model.json
# A tiny but valid safetensors file per dtype the loader converts (F32, F16, BF16, F64) and one
# it refuses (I64): 8-byte little-endian header length, JSON header, then the data.
python3 - <<'PY'
import json, struct
for dtype, size in [("F32", 4), ("F16", 2), ("BF16", 2), ("F64", 8), ("I64", 8)]:
    data = bytes(range(4 * size))
    header = json.dumps({"fc.weight": {"dtype": dtype, "shape": [2, 2],
                                       "data_offsets": [0, len(data)]},
                         "__metadata__": {"format": "pt"}}).encode()
    with open(f"corpus/weights_loader/tiny_{dtype}.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + data)
PY
ls corpus/* | head -100 | wc -l
