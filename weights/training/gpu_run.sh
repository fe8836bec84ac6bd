#!/usr/bin/env bash
# The owed GPU run in one device call: train (ends by a deadline), calibrate and
# export, check the export, and pack everything that must come back into $OUT
# within the device's return limits (8 files, 16 MiB each). See README.md,
# "The GPU run, step by step".
#
#   OUT=/tmp/out PRESET=smoke DATA=/work/shared/data/kermany bash weights/training/gpu_run.sh   # CPU rehearsal
#   bash weights/training/gpu_run.sh                                                            # on the GPU machine
#
# Environment: OUT (required), PRESET (gpu), DATA (.data/kermany: a copy of the
# data folder carried with the call), MINUTES of training before the deadline
# (7), PY (python3), EXTRA (more train.py arguments).
set -euo pipefail
: "${OUT:?set OUT to the folder whose files come back}"
PRESET=${PRESET:-gpu}
DATA=${DATA:-.data/kermany}
MINUTES=${MINUTES:-7}
PY=${PY:-python3}
read -r -a extra <<<"${EXTRA:-}"
EXPORT=.data/gpu-export RUN=.data/gpu-run LOGS=.data/gpu-logs
rm -rf "$EXPORT" "$RUN" "$LOGS"
mkdir -p "$OUT" "$EXPORT" "$LOGS"
[ -d "$DATA/train" ] || { echo "no data at $DATA (carry a copy of ../shared/data/kermany)" >&2; exit 2; }

# the deadline is checked after every epoch; the schedule is re-planned to end before it
deadline=$(date -u -d "+${MINUTES} min" +%H:%M)
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
common=(--preset "$PRESET" --data-root "$DATA" --run-dir "$RUN" --export-dir "$EXPORT" "${extra[@]}")
"$PY" weights/training/train.py "${common[@]}" --deadline "$deadline" >"$LOGS/train.log" 2>&1 \
    || { tail -20 "$LOGS/train.log"; exit 1; }
grep -E "EPOCH|best|re-plan|finished|WARN" "$LOGS/train.log" | cut -c1-220 || true
# (the smoke preset exports by itself after training)
[ "$PRESET" = smoke ] || "$PY" weights/training/train.py "${common[@]}" --export >"$LOGS/export.log" 2>&1 \
    || { tail -20 "$LOGS/export.log"; exit 1; }
"$PY" weights/training/check_export.py "$EXPORT" 2>&1 | tee "$LOGS/check_export.log"

# weights in pieces of 15 MiB (a returned file may be at most 16 MiB); reassemble with
#   cat weights.part-* > weights/$(jq -r .weights model.json)
weights_file=$(ls "$EXPORT"/*.safetensors)
split -b 15M -d "$weights_file" "$OUT/weights.part-"
sha256sum "$weights_file" | sed "s#  .*/#  #" >"$OUT/weights.sha256"
# everything small in one archive: model.json, reference/, train_log.csv,
# export_summary.json (= weights/training/validation_metrics.json), logs
tar -czf "$OUT/meta.tar.gz" -C "$EXPORT" model.json reference \
    -C "$PWD/$RUN" train_log.csv export_summary.json -C "$PWD/$LOGS" .
ls -l "$OUT"
