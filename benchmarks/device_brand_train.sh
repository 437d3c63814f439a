#!/bin/bash
# Issue 15 on a lent GPU, in one call: the brand embedder (from scratch) and the logo detector (from the shipped
# weights) trained side by side on one GPU, each with a wall-time cap, the results written under $OUT.
#
# Run through the `device` tool from the repository root, with the data and wheels carried (they are ignored here):
#   .gpu/brand_styles64.tar.gz vision make-brand-dataset ... --size 64 --splits train val  (configs/embedding/
#                            brand_styles_gpu_resnet10t.yaml), JPEG re-encoded smaller for the transfer
#   .gpu/logo_mined.tar.gz    vision make-logo-dataset ... (configs/detection/logo_gpu_finetune.yaml)
#   .whl/*.whl               packages the device image lacks (albumentations, jsonargparse, pytorch-metric-learning,
#                            ultralytics, ...), for its Python 3.12
#   bash benchmarks/device_brand_train.sh
# The device image has no faiss, so the embedder trains without validation here; its weights come back as a zoo
# file that `tools/train.py ... --model.init_args.init_from <file> --trainer.max_epochs 0 --zoo-name NAME`
# validates and stores with its metrics on any machine. Logs, metrics.csv and nvidia-smi's view come back too.
set -u
OUT=${OUT:-runs/device_out}
CAP=${TRAIN_CAP:-00:00:05:40}     # Lightning max_time (DD:HH:MM:SS): each run stops there at the latest
mkdir -p "$OUT"
start=$(date +%s)
LOGS=$(mktemp -d)   # small logs: tarred into $OUT at the end (the device returns at most 8 files)
if [ -z "${SKIP_PIP:-}" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "pip install of .whl failed"; exit 3; }
fi
export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH} HF_HUB_OFFLINE=1 YOLO_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$LOGS/gpu.txt" 2>&1; cat "$LOGS/gpu.txt"
echo "cpus: $(nproc)"
python3 - <<'EOF' || { echo "import check failed"; exit 4; }
import platform, torch, timm, pytorch_lightning, albumentations, pytorch_metric_learning, jsonargparse, ultralytics
import vision.tasks.embedding, vision.tasks.detection, vision.data.brands, vision.data.detection, vision.cli
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.cuda.is_available(),
      "timm", timm.__version__, "lightning", pytorch_lightning.__version__, "ultralytics", ultralytics.__version__,
      "albumentations", albumentations.__version__)
EOF
mkdir -p runs/gpu
for t in .gpu/*.tar.gz; do tar -xf "$t" -C runs/gpu || exit 5; done
printf 'path: %s\ntrain: images/train\nval: images/val\nnames:\n  0: logo\n' "$PWD/runs/gpu/logo_mined" \
    > runs/gpu/logo_mined/data.yaml
python3 tools/export.py --model weights/logo_yolo11n.safetensors --format ultralytics --out runs/gpu/logo_yolo11n.pt \
    > "$LOGS/export.log" 2>&1 || { tail -5 "$LOGS/export.log"; exit 6; }
echo "setup $(( $(date +%s) - start )) s"

python3 tools/train.py --config configs/embedding/brand_styles_gpu_resnet10t.yaml --trainer.max_time "$CAP" \
    --trainer.limit_val_batches 0 --trainer.num_sanity_val_steps 0 --trainer.enable_progress_bar false \
    ${EXTRA_EMB:-} > "$OUT/embedder.log" 2>&1 &
emb=$!
python3 tools/train.py --config configs/detection/logo_gpu_finetune.yaml --trainer.max_time "$CAP" \
    --trainer.enable_progress_bar false --zoo-name logo_gpu_yolo11n --zoo-dir /tmp/zoo --zoo-half true \
    --zoo-licence "AGPL-3.0 (ultralytics architecture and training code)" \
    ${EXTRA_DET:-} > "$OUT/detector.log" 2>&1 &
det=$!
n=0
while kill -0 $emb 2>/dev/null || kill -0 $det 2>/dev/null; do
    sleep 5; n=$((n + 1))
    [ $((n % 6)) -eq 0 ] && echo "$(( $(date +%s) - start )) s: gpu $(nvidia-smi --query-gpu=utilization.gpu,memory.used \
        --format=csv,noheader 2>/dev/null)"
done
wait $emb; echo "embedder rc=$?"; wait $det; echo "detector rc=$?"
tail -n 4 "$OUT/embedder.log" "$OUT/detector.log"

# the embedder's last weights as a zoo file (metrics come from validating it later, where faiss is installed)
python3 - <<'EOF' > "$LOGS/embedder_zoo.log" 2>&1 || echo "embedder zoo file failed: $(tail -3 $LOGS/embedder_zoo.log)"
from pathlib import Path
import torch
from vision.tasks.embedding import BrandEmbeddingModule
from vision.zoo import save_model

ckpt = Path("runs/brand_gpu_resnet10t/checkpoints/last.ckpt")
state = torch.load(ckpt, map_location="cpu", weights_only=True)
hp = state["hyper_parameters"]
module = BrandEmbeddingModule(**{k: v for k, v in hp.items() if not k.startswith("_") and k != "optimizer"})
module.load_state_dict(state["state_dict"])
card = module.model_card("brand_gpu_resnet10t", metrics={}, notes=f"epoch {state['epoch']}, step {state['global_step']}")
card = save_model(module.eval_model, card, "/tmp/zoo", half=True)
print("saved", card.file, card.sha256, "epoch", state["epoch"], "step", state["global_step"])
EOF
cat "$LOGS/embedder_zoo.log"
cp /tmp/zoo/brand_gpu_resnet10t.safetensors /tmp/zoo/logo_gpu_yolo11n.safetensors /tmp/zoo/manifest.json "$OUT/" 2>/dev/null
m1=$(ls runs/brand_gpu_resnet10t/lightning_logs/*/metrics.csv 2>/dev/null | tail -1)
m2=$(ls runs/logo_gpu/lightning_logs/*/metrics.csv 2>/dev/null | tail -1)
[ -n "$m1" ] && cp "$m1" "$LOGS/embedder_metrics.csv"; [ -n "$m2" ] && cp "$m2" "$LOGS/detector_metrics.csv"
tar -cf "$OUT/logs.tar" -C "$LOGS" .
ls -la "$OUT"; echo "total $(( $(date +%s) - start )) s"
