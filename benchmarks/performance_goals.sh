#!/bin/bash
# Every row of the performance goals table (issue 25; benchmarks/results/README.md) measured again, one after the
# other on the same cores, from a checkout with `make .venv/bin/.installed-test` done:
#   GROCERY=../shared/datasets/grocery_store bash benchmarks/performance_goals.sh runs/perf_goals
# Rows and what they need (each prints its own table; the log is $OUT/run.log):
#   1. grocery_resnet10t batch 1 and 16, torch / bf16 / ORT fp32 / ORT INT8, one thread: `vision benchmark`
#   2. the logo detector against ultralytics (torch batch 16; ONNX Runtime batch 1 with every variant): the committed
#      sample images (data/), benchmarks/detection_vs_ultralytics.py --predict
#   3. `vision dedup` end to end against plain pHash: benchmarks/dedup_speed.py --end-to-end (its 750-photo set is
#      built once under $OUT/dedup from $GROCERY)
#   4. the brand recogniser's time with text reading on: benchmarks/brand_text.py --default-check, which needs the
#      brand benchmark's data (BRAND_DATA, made by benchmarks/brand_robustness.py; skipped when it is absent)
# About 5 minutes on 2 idle cores. Nothing else should run meanwhile: the ratios are side by side, the times are not.
set -eu
OUT=${1:?usage: bash benchmarks/performance_goals.sh OUT_DIR}
GROCERY=${GROCERY:-../shared/datasets/grocery_store}
BRAND_DATA=${BRAND_DATA:-runs/brand_robustness/data}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 YOLO_OFFLINE=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
PY=${PYTHON:-.venv/bin/python}
exec > >(tee "$OUT/run.log") 2>&1
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u '+%F %T UTC'), $(nproc) cores:" \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)," \
    "$(grep -o 'avx512_vnni\|amx_int8\|avx512_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')load $(cut -d' ' -f1-3 /proc/loadavg)"
step() { echo; echo "== $1 ($(date -u +%T), load $(cut -d' ' -f1-3 /proc/loadavg))"; }
step "1. classifier: vision benchmark"
$PY -m vision benchmark --model grocery_resnet10t --calib-dir "$GROCERY/train" --data "$GROCERY/val.txt" \
    --threads 1 --batch-sizes 1,16 --precision fp32,bf16 --backends torch,ort-fp32,ort-int8 --out "$OUT/grocery.json"
step "2. detector: benchmarks.detection_vs_ultralytics --predict"
$PY -m benchmarks.detection_vs_ultralytics --predict data --int8-calib data/logo_sample/images --threads 1 \
    --rounds 5 --out "$OUT/detection"
step "3. dedup: benchmarks.dedup_speed --end-to-end"
$PY -m benchmarks.dedup_speed --end-to-end --data "$GROCERY" --out "$OUT/dedup" --repeats 5 --no-torch
if [ -d "$BRAND_DATA/cross_style" ]; then
    step "4. brand recogniser with text: benchmarks.brand_text --default-check"
    $PY -m benchmarks.brand_text --default-check --data "$BRAND_DATA" --grocery "$GROCERY" \
        --out "$OUT/brand_text_default_check.json"
else
    step "4. skipped: no brand benchmark data at $BRAND_DATA (benchmarks/brand_robustness.py makes it)"
fi
step "done"
