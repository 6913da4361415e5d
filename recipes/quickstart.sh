#!/usr/bin/env bash
# Quickstart: the whole audiox loop in a few minutes on a laptop CPU, at the `debug` size.
# Renders a tiny synthetic-world corpus, trains the debug autoencoder and teacher on it, then generates audio
# from a text prompt with the trained model. The audio is a toy (1 s, 8 kHz, a few hundred steps of training):
# this shows the commands, not the quality. For the real model see `recipes/` and docs/training.md.
#   bash recipes/quickstart.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/quickstart}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
uv run audiox-data synth --out "$OUT/data" --clips 32 --seed 0 --shard-size 16
# audio-only tasks for the autoencoder (no video to decode)
uv run audiox-train autoencoder --config debug data.shards="$OUT/data" max_steps=150 optim.lr=3e-3 autoencoder.crop_seconds=0.25 \
    data.task_weights='{"t2a": 1.0, "t2m": 1.0}' \
    checkpoint.dir="$OUT/autoencoder" --out "$OUT/autoencoder.safetensors"
uv run audiox-train --config debug data.shards="$OUT/data" max_steps=150 checkpoint.dir="$OUT/teacher" \
    model.autoencoder.pretrained="$OUT/autoencoder.safetensors" --out "$OUT/model"
uv run audiox generate "a bell rings twice" --model "$OUT/model" --steps 25 --cfg 4 --seed 0 \
    --out "$OUT/bell.wav" --force
echo "wrote $OUT/bell.wav"
