#!/usr/bin/env bash
# A better decoder for the bundled models, without retraining them: fine-tune the mini autoencoder's decoder on the
# frozen encoder's latents (autoencoder.train_encoder=false), then give both bundled models the new decoder.
# The teacher and the student were trained on that encoder's latents, so they keep working; only the decoding of
# their latents to audio improves. docs/results.md's "autoencoder round trip" row is the ceiling this lifts.
#
#   bash recipes/decoder.sh [OUT_DIR]          # defaults sized for one GPU (DECODER_MIN=3)
#   INSTALL=1 bash recipes/decoder.sh          # also copy the new weights into the audiox-infer package
#   KIND=oobleck bash recipes/decoder.sh       # fine-tune the bundled Oobleck decoder instead of a new iSTFT one
#
# KIND=istft (default) trains a Vocos-style decoder (autoencoder.decoder=istft, ISTFT_DIM wide) on the frozen
# encoder: it learns tones far faster than the Oobleck decoder and decodes several times faster. The bundled models
# already decode with one of ISTFT_DIM 192, so this fine-tunes it (the default LR 6e-4 was for a fresh decoder;
# the bundled one was fine-tuned at LR=2e-4).
# Knobs: CLIPS, SEED (the bundled models' corpus: 4000 clips, seed 0), DECODER_MIN (minutes), BATCH, WORKERS, LR,
# KIND (istft|oobleck), ISTFT_DIM, MEL and STFT (loss weights), LATENT_NOISE (autoencoder.latent_noise: also decode
# noised latents to the clean audio, so a generator's near-miss latents do not become false alarms; default 0),
# EVENT_CROPS (autoencoder.event_crops: share of each batch that is one isolated synthetic-world event; default 0)
# and EVENT_CATEGORIES (comma-separated names those events come from; default all: pick the categories that the
# suite's per-category table shows the round trip losing), DEVICE (auto|cpu|cuda), RUN (launcher prefix; default
# `uv run`), PYTHON, SWAP=0 (stop at OUT/ae.safetensors: on a machine without the bundled weights, with
# OUT/ae0.safetensors placed beforehand). Resumes after a crash.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/decoder}"
CLIPS="${CLIPS:-4000}"
SEED="${SEED:-0}"
DECODER_MIN="${DECODER_MIN:-3}"
BATCH="${BATCH:-32}"
WORKERS="${WORKERS:-14}"
DEVICE="${DEVICE:-auto}"
KIND="${KIND:-istft}"
ISTFT_DIM="${ISTFT_DIM:-192}"
MEL="${MEL:-2.0}"
STFT="${STFT:-0.5}"
LATENT_NOISE="${LATENT_NOISE:-0}"
EVENT_CROPS="${EVENT_CROPS:-0}"
EVENT_CATEGORIES="${EVENT_CATEGORIES:-}"
EVENT_JSON="[$(echo "$EVENT_CATEGORIES" | sed -E 's/ //g; s/([^,]+)/"\1"/g')]"
if [ "$KIND" = istft ]; then
    LR="${LR:-6e-4}"  # a fresh decoder
    KIND_ARGS=(model.autoencoder.decoder=istft model.autoencoder.istft_dim="$ISTFT_DIM")
    SET_ARGS=(--set decoder=istft --set istft_dim="$ISTFT_DIM")
else
    LR="${LR:-3e-4}"  # fine-tuning
    KIND_ARGS=(); SET_ARGS=()
fi
PROGRESS="${PROGRESS:-true}"
RUN="${RUN-uv run}"
PYTHON="${PYTHON:-python}"
PKG=packages/audiox-infer/src/audiox/infer/default_model
SHARD_SIZE=$(( CLIPS / (2 * WORKERS) > 0 ? CLIPS / (2 * WORKERS) : 1 ))
mkdir -p "$OUT"
T0=$(date +%s)
stamp() { echo "[decoder $(( $(date +%s) - T0 ))s] $*"; }

stamp "data: $CLIPS clips (audio only), seed $SEED"
$RUN audiox-data synth --out "$OUT/data" --clips "$CLIPS" --seed "$SEED" --shard-size "$SHARD_SIZE" \
    --workers "$WORKERS" --no-video --quiet
stamp "extract the bundled autoencoder"
[ -f "$OUT/ae0.safetensors" ] || $RUN $PYTHON recipes/swap_decoder.py extract "$PKG" "$OUT/ae0.safetensors"
stamp "decoder: $DECODER_MIN min"
$RUN audiox-train autoencoder --config mini device="$DEVICE" data.shards="$OUT/data" data.batch_size="$BATCH" \
    data.num_workers="$WORKERS" data.task_weights='{"t2a": 1.0, "t2m": 1.0}' optim.lr="$LR" \
    autoencoder.crop_seconds=1.0 autoencoder.mel="$MEL" autoencoder.stft="$STFT" "${KIND_ARGS[@]}" \
    autoencoder.train_encoder=false autoencoder.latent_noise="$LATENT_NOISE" \
    autoencoder.event_crops="$EVENT_CROPS" autoencoder.event_categories="$EVENT_JSON" model.autoencoder.pretrained="$OUT/ae0.safetensors" \
    max_steps=1000000 max_minutes="$DECODER_MIN" log.progress="$PROGRESS" checkpoint.every=100000 \
    checkpoint.dir="$OUT/run" --out "$OUT/ae.safetensors"
STEPS=$(ls -d "$OUT"/run/checkpoints/step-* 2>/dev/null | tail -1 | sed 's/.*step-0*//')
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
NOTE="$KIND decoder, ${STEPS:-?} steps at batch $BATCH x 1 s (latent noise up to $LATENT_NOISE x std; isolated-event crops $EVENT_CROPS${EVENT_CATEGORIES:+ of $EVENT_CATEGORIES}), $DECODER_MIN min, $(date -u +%F), commit $COMMIT (recipes/decoder.sh)"
if [ "${SWAP:-1}" = 0 ]; then stamp "done: $OUT/ae.safetensors ($NOTE)"; exit 0; fi
stamp "swap the decoder into both bundled models"
$RUN $PYTHON recipes/swap_decoder.py replace "$OUT/ae.safetensors" "$PKG" "$OUT/student" --note "$NOTE" "${SET_ARGS[@]}"
$RUN $PYTHON recipes/swap_decoder.py replace "$OUT/ae.safetensors" "$PKG/teacher" "$OUT/teacher" --note "$NOTE" "${SET_ARGS[@]}"
if [ "${INSTALL:-0}" = 1 ]; then
    cp "$OUT/student/config.json" "$OUT/student/model.safetensors" "$OUT/student/MODEL_CARD.md" "$PKG/"
    cp "$OUT/teacher/config.json" "$OUT/teacher/model.safetensors" "$OUT/teacher/MODEL_CARD.md" "$PKG/teacher/"
    stamp "installed into $PKG"
fi
stamp "done: $OUT/student $OUT/teacher (judge them: audiox-bench suite --model student=$OUT/student ...)"
