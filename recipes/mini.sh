#!/usr/bin/env bash
# The shipped default model, end to end: synthetic-world corpus -> mini autoencoder -> mini teacher (flow matching,
# all task families) -> 4-step AudioX-Turbo student (DMD + diffusion discriminator) -> half-precision export with a
# model card. Every stage resumes after a crash (rerun the same command); each has a wall-clock budget.
#
#   bash recipes/mini.sh [OUT_DIR]                      # defaults sized for one GPU (about 9 minutes on an H200)
#   AE_MIN=60 TEACHER_MIN=600 DISTILL_MIN=180 BATCH=16 WORKERS=2 bash recipes/mini.sh runs/mini   # a CPU run
#
# Knobs (environment): CLIPS (training clips), SEED (data seed), AE_MIN / TEACHER_MIN / DISTILL_MIN (minutes per
# stage), BATCH, AE_BATCH, DISTILL_BATCH, WORKERS (loader processes), DEVICE (auto|cpu|cuda), QUANTIZE (int8, the
# default, stores the exported Linear weights as row-wise int8: about 20 MB per model; none), LATENTS (1, the
# default: encode the corpus's target latents once after the autoencoder stage and let the teacher and the
# distillation read them, `audiox-train encode-latents`; 0: encode every batch), PRECHECK=1 (a
# seconds-long dry run of every stage first), RUN (launcher prefix; default `uv run`; empty when the audiox-*
# commands are on PATH), GAN_WEIGHT (the discriminator's weight in the student's loss, Eq. 15's lambda_adv; the
# paper's 1 is the default; docs/results.md "The student's scale": 0 keeps the student's latents at the data's scale),
# GAN_MATCH_RMS (false, the paper; true: the discriminator sees student latents at their condition's real rms),
# GAN_HEAD (pool, the paper: one logit per clip; frame: one logit per latent frame), REG_WEIGHT (0, the paper; W > 0
# adds DMD's regression term: first REG_BATCHES batches (default 64) of the teacher's REG_STEPS-step (default 25)
# CFG samples are made with `audiox-distill pairs`, outside the DISTILL_MIN clock; REG_MODE first|all, see
# docs/distillation.md).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/mini}"
CLIPS="${CLIPS:-4000}"
SEED="${SEED:-0}"
AE_MIN="${AE_MIN:-1.0}"
TEACHER_MIN="${TEACHER_MIN:-3.25}"
DISTILL_MIN="${DISTILL_MIN:-2}"
BATCH="${BATCH:-32}"
AE_BATCH="${AE_BATCH:-32}"
DISTILL_BATCH="${DISTILL_BATCH:-32}"
GAN_WEIGHT="${GAN_WEIGHT:-1}"
GAN_MATCH_RMS="${GAN_MATCH_RMS:-false}"
GAN_HEAD="${GAN_HEAD:-pool}"
REG_WEIGHT="${REG_WEIGHT:-0}"
REG_BATCHES="${REG_BATCHES:-64}"
REG_STEPS="${REG_STEPS:-25}"
REG_MODE="${REG_MODE:-first}"
WORKERS="${WORKERS:-14}"
PROGRESS="${PROGRESS:-true}"
QUANTIZE="${QUANTIZE:-int8}"
LATENTS="${LATENTS:-1}"
CACHE=(); [ "$LATENTS" = 1 ] && CACHE=(data.latents=true)
DEVICE="${DEVICE:-auto}"
RUN="${RUN-uv run}"
PYTHON="${PYTHON:-python}"
SHARD_SIZE=$(( CLIPS / (2 * WORKERS) > 0 ? CLIPS / (2 * WORKERS) : 1 ))
mkdir -p "$OUT"
T0=$(date +%s)
stamp() { echo "[mini $(( $(date +%s) - T0 ))s] $*"; }

stage_data() {  # corpus + held-out prompt files (the data command skips finished shards on a rerun)
    $RUN audiox-data synth --out "$1/data" --clips "$2" --seed "$SEED" --shard-size "$3" --workers "$4" --quiet
}
stage_ae() {  # audio-only tasks: the autoencoder needs no video decoding
    $RUN audiox-train autoencoder --config mini device="$DEVICE" data.shards="$1/data" data.batch_size="$AE_BATCH" \
        data.num_workers="$WORKERS" data.task_weights='{"t2a": 1.0, "t2m": 1.0}' optim.lr=6e-4 \
        autoencoder.crop_seconds=1.0 max_steps=1000000 max_minutes="$2" log.progress="$PROGRESS" checkpoint.every=100000 \
        checkpoint.dir="$1/autoencoder" --out "$1/autoencoder.safetensors"
}
stage_latents() {  # the frozen autoencoder's latents of every clip, once (skips shards already cached)
    [ "$LATENTS" = 1 ] || return 0
    $RUN audiox-train encode-latents --config mini device="$DEVICE" data.shards="$1/data" data.batch_size="$AE_BATCH" \
        model.autoencoder.pretrained="$1/autoencoder.safetensors" log.progress=false
}
stage_teacher() {
    $RUN audiox-train --config mini device="$DEVICE" data.shards="$1/data" data.batch_size="$BATCH" "${CACHE[@]}" \
        data.num_workers="$WORKERS" model.autoencoder.pretrained="$1/autoencoder.safetensors" \
        optim.lr=5e-4 schedule.inv_gamma=5e3 ema.decay=0.995 log.val_every=0 log.sample_every=0 log.tensorboard=false \
        max_steps=1000000 max_minutes="$2" log.progress="$PROGRESS" checkpoint.every=100000 checkpoint.dir="$1/teacher-run" --out "$1/teacher"
}
stage_distill() {  # DMD2's two-time-scale ratio (1 student : 5 fake updates); see docs/distillation.md
    local REG=() pairs
    if [ "$REG_WEIGHT" != 0 ]; then  # DMD's regression pairs, one folder per teacher's weights (resumes)
        pairs="$1/pairs-$(sha256sum "$1/teacher/model.safetensors" | cut -c1-12)"
        $RUN audiox-distill pairs --teacher "$1/teacher" --out "$pairs" --batches "$REG_BATCHES" --steps "$REG_STEPS" \
            --config paper device="$DEVICE" data.shards="$1/data" data.batch_size="$DISTILL_BATCH" "${CACHE[@]}" \
            data.num_workers="$WORKERS"
        REG=(regression.weight="$REG_WEIGHT" regression.pairs="$pairs" regression.steps="$REG_MODE")
    fi
    $RUN audiox-distill --teacher "$1/teacher" --config paper --export "$1/student" --run-dir "$1/distill-run" \
        device="$DEVICE" deepspeed.enabled=false data.shards="$1/data" data.batch_size="$DISTILL_BATCH" "${CACHE[@]}" \
        data.num_workers="$WORKERS" dmd.student_updates=1 dmd.fake_updates=5 optim.lr=1e-4 schedule.warmup=0.9 \
        ema.decay=0.99 gan.num_blocks=4 gan.weight="$GAN_WEIGHT" gan.match_rms="$GAN_MATCH_RMS" gan.head="$GAN_HEAD" \
        "${REG[@]}" log.every=10 log.tensorboard=false max_steps=1000000 max_minutes="$2" log.progress="$PROGRESS" \
        checkpoint.every=100000
}

if [ "${PRECHECK:-0}" = 1 ]; then  # every stage for a few seconds on a tiny corpus: fail fast, before the long run
    P="$OUT/precheck"; rm -rf "$P"
    stamp "precheck"
    (
        BATCH=2 AE_BATCH=2 DISTILL_BATCH=2 REG_BATCHES=1 REG_STEPS=2
        stage_data "$P" $(( 4 * WORKERS )) 2 "$WORKERS"
        stage_ae "$P" 0.02
        stage_latents "$P"
        stage_teacher "$P" 0.05
        stage_distill "$P" 0.05
    )
    rm -rf "$P"
    stamp "precheck passed"
fi

stamp "data: $CLIPS clips, seed $SEED"; stage_data "$OUT" "$CLIPS" "$SHARD_SIZE" "$WORKERS"
stamp "autoencoder: $AE_MIN min"; stage_ae "$OUT" "$AE_MIN"
stamp "latents: LATENTS=$LATENTS"; stage_latents "$OUT"
stamp "teacher: $TEACHER_MIN min"; stage_teacher "$OUT" "$TEACHER_MIN"
stamp "distill: $DISTILL_MIN min"; stage_distill "$OUT" "$DISTILL_MIN"
stamp "export: half precision (Linear weights: $QUANTIZE) + model cards"
$RUN $PYTHON recipes/model_card.py --out "$OUT" --seconds $(( $(date +%s) - T0 )) --quantize "$QUANTIZE" \
    --recipe "CLIPS=$CLIPS SEED=$SEED AE_MIN=$AE_MIN TEACHER_MIN=$TEACHER_MIN DISTILL_MIN=$DISTILL_MIN BATCH=$BATCH AE_BATCH=$AE_BATCH DISTILL_BATCH=$DISTILL_BATCH GAN_WEIGHT=$GAN_WEIGHT GAN_MATCH_RMS=$GAN_MATCH_RMS GAN_HEAD=$GAN_HEAD REG_WEIGHT=$REG_WEIGHT REG_BATCHES=$REG_BATCHES REG_STEPS=$REG_STEPS REG_MODE=$REG_MODE WORKERS=$WORKERS bash recipes/mini.sh"
stamp "done: $OUT/teacher-fp16 $OUT/student-fp16"
