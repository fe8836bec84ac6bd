#!/usr/bin/env bash
# Bring a gpu_run.sh result back into the repository: reassemble the weights,
# check their sha256, and replace model.json, reference/, train_log.csv and
# validation_metrics.json. The previous weights file is removed (it stays in git history).
#
#   bash weights/training/gpu_unpack.sh FILES_AT [DEST=weights]
set -euo pipefail
src=${1:?usage: gpu_unpack.sh FILES_AT [DEST]}
dest=${2:-weights}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$src/meta.tar.gz" -C "$tmp"
name=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["weights"])' "$tmp/model.json")
cat "$src"/weights.part-* >"$tmp/$name"
(cd "$tmp" && sha256sum -c "$src/weights.sha256")
mkdir -p "$dest/training"
old=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["weights"])' "$dest/model.json" 2>/dev/null || true)
[ -n "$old" ] && [ "$old" != "$name" ] && rm -f "$dest/$old"
mv "$tmp/$name" "$dest/$name"
cp "$tmp/model.json" "$dest/model.json"
rm -rf "$dest/reference" && cp -r "$tmp/reference" "$dest/reference"
cp "$tmp/train_log.csv" "$dest/training/train_log.csv"
cp "$tmp/export_summary.json" "$dest/training/validation_metrics.json"
echo "unpacked $name into $dest; next: check_export.py $dest, cargo test --test shipped_model, cxr-viewer eval, MODEL_CARD.md"
