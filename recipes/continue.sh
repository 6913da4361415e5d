#!/usr/bin/env bash
# Continue the shipped default (or any teacher/student pair) instead of starting over: fine-tune the teacher with
# flow matching from its exported weights (audiox-train init_from=), then continue the student's distillation
# against the new teacher (audiox-distill --student), then export both with model cards that keep the earlier
# history. The autoencoder is frozen and stays as it is, so a decoder trained with recipes/decoder.sh is kept, and
# the corpus's target latents are encoded once (audiox-train encode-latents) so a CPU step skips the encoder.
#
#   bash recipes/continue.sh [OUT_DIR]                                    # sized for one GPU: 4 + 2 minutes of training
#   DEVICE=cpu BATCH=16 DISTILL_BATCH=16 WORKERS=1 TEACHER_MIN=52 DISTILL_MIN=25 bash recipes/continue.sh runs/cont
#   INSTALL=1 bash recipes/continue.sh                                    # also copy both into the audiox-infer package
#
# Knobs (environment):
#   TEACHER, STUDENT   model folders (default: the bundled models); STUDENT= (empty) distils a new student from a
#                      copy of the new teacher
#   DATA               a corpus folder, used as it is; default OUT/data, rendered with CLIPS and SEED (resuming; the
#                      bundled models' corpus is 4000 clips, seed 0)
#   TEACHER_MIN, DISTILL_MIN   minutes per stage; 0 skips it (TEACHER_MIN=0 distils against OUT/teacher when an
#                      earlier run left one, else against TEACHER)
#   LR, DISTILL_LR, BATCH, DISTILL_BATCH, WORKERS, DEVICE (auto|cpu|cuda), QUANTIZE (int8|none)
#   SCHEDULE           the teacher's learning rate after a ~30-step warm-up: inverse (default: LR / (1 + step / 200),
#                      an eighth of LR by step 1,400) | constant (LR throughout). Session 30 (docs/results.md): 1,040
#                      more steps at a constant 3e-4 lifted a teacher continued with `inverse` by 6.6 points of
#                      Cat-acc, but 780 more at that rate lost 4.5 again: at a constant rate the checkpoints swing
#                      by several points, so judge more than one
#   GAN_WEIGHT         the discriminator's weight in the student's loss (Eq. 15's lambda_adv; default 1, the paper's)
#   GAN_MATCH_RMS      false (default, the paper) | true: the discriminator sees student latents at the rms of the real
#                      latent of their condition, so it cannot push the student's scale (docs/distillation.md)
#   GAN_HEAD           pool (default, the paper: one logit per clip) | frame (one logit per latent frame)
#   REG_WEIGHT         0 (default, the paper) | W > 0: DMD's regression term; REG_BATCHES (64) batches of the new
#                      teacher's REG_STEPS-step (25) CFG samples are made first (audiox-distill pairs, outside the
#                      DISTILL_MIN clock, one folder per teacher's weights); REG_MODE first (DMD's) | all;
#                      REG_SHUFFLE false (default: one stored shard per batch, in order) | true (each batch drawn
#                      from a fresh permutation of all stored pairs per pass)
#   DM_WEIGHT          the DM term's weight (Eq. 15's lambda_dm; default 1, the paper's) | 0 with GAN_WEIGHT=0 and
#                      REG_WEIGHT > 0: the student learns from the teacher's pairs alone (docs/distillation.md;
#                      session 32's student, 6x cheaper per update)
#   DISTILL_EMA        the student's EMA decay (default 0.99)
#   GUIDED_WEIGHT      0 (default: DMD, the paper) | W > 0: guided velocity distillation instead (Meng et al. 2023):
#                      the student's velocity pulled to the teacher's CFG-GUIDED_SCALE (6) velocity on the states
#                      of GUIDED_STATES' (student | teacher) 4-step Euler path; DM, GAN and regression terms off; the
#                      student is exported with the Euler sampler (docs/distillation.md). Start it from the teacher
#                      (STUDENT=) or from an earlier guided student
#   LATENTS            1 (default): encode the corpus's target latents once; 0: encode every batch (cheap on a GPU)
#   PROGRESS, RUN (launcher prefix; default `uv run`), PYTHON
#   PRECHECK=1         a seconds-long dry run of every stage on a tiny corpus first
#   TOKENIZER          empty (default): keep the teacher's text encoder; `corpus`: learn a BPE tokenizer from the
#                      corpus's captions (audiox-data tokenizer -> OUT/tokenizer); or a tokenizer folder. Either way
#                      the teacher gets a fresh T5 over it (recipes/retokenize.py, TEXT_MAX_LENGTH tokens, default 96)
#                      before its training, and the student is distilled afresh (needs STUDENT=)
#   ALIGN_STEPS        0 (default): none; N: pretrain the teacher's text encoder for N steps against the corpus's
#                      cached latents (audiox-train text-align, batch ALIGN_BATCH, default 64; needs LATENTS=1 and
#                      STUDENT=) and train the teacher with it frozen, as the paper's T5 is
#   ALIGN_EVENTS       share of each text-align batch given to isolated synthetic-world events (--event-crops;
#                      default 0): keeps the names of short or pitch-only events (click, chirp, whistle) apart
#   SWITCHES           model.* switches for the teacher's run, e.g. "model.maf.single_null=true model.maf.global_text=true"
#                      (weights that still fit; added ones start at zero; needs STUDENT=)
# Every stage resumes after a crash: rerun the same command.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/continue}"
PKG=packages/audiox-infer/src/audiox/infer/default_model
TEACHER="${TEACHER:-$PKG/teacher}"
STUDENT="${STUDENT-$PKG}"
DATA_GIVEN="${DATA:+1}"
DATA="${DATA:-$OUT/data}"
CLIPS="${CLIPS:-4000}"
SEED="${SEED:-0}"
TEACHER_MIN="${TEACHER_MIN:-4}"
DISTILL_MIN="${DISTILL_MIN:-2}"
LR="${LR:-3e-4}"
SCHEDULE="${SCHEDULE:-inverse}"
case "$SCHEDULE" in
    constant) SCHED=(schedule.kind=constant schedule.warmup=0.97) ;;
    inverse) SCHED=(schedule.kind=inverse schedule.warmup=0.97 schedule.inv_gamma=200 schedule.power=1) ;;
    *) echo "continue.sh: SCHEDULE must be constant or inverse, got '$SCHEDULE'" >&2; exit 2 ;;
esac
DISTILL_LR="${DISTILL_LR:-1e-4}"
GAN_WEIGHT="${GAN_WEIGHT:-1}"
GAN_MATCH_RMS="${GAN_MATCH_RMS:-false}"
GAN_HEAD="${GAN_HEAD:-pool}"
REG_WEIGHT="${REG_WEIGHT:-0}"
DM_WEIGHT="${DM_WEIGHT:-1}"
DISTILL_EMA="${DISTILL_EMA:-0.99}"
REG_BATCHES="${REG_BATCHES:-64}"
REG_STEPS="${REG_STEPS:-25}"
REG_MODE="${REG_MODE:-first}"
REG_SHUFFLE="${REG_SHUFFLE:-false}"
GUIDED_WEIGHT="${GUIDED_WEIGHT:-0}"
GUIDED_SCALE="${GUIDED_SCALE:-6}"
GUIDED_STATES="${GUIDED_STATES:-student}"
BATCH="${BATCH:-32}"
DISTILL_BATCH="${DISTILL_BATCH:-32}"
WORKERS="${WORKERS:-14}"
DEVICE="${DEVICE:-auto}"
QUANTIZE="${QUANTIZE:-int8}"
LATENTS="${LATENTS:-1}"
PROGRESS="${PROGRESS:-true}"
RUN="${RUN-uv run}"
PYTHON="${PYTHON:-python}"
CACHE=(); [ "$LATENTS" = 1 ] && CACHE=(data.latents=true)
CONT=(); [ -n "$STUDENT" ] && CONT=(--student "$STUDENT")
TOKENIZER="${TOKENIZER:-}"
TEXT_MAX_LENGTH="${TEXT_MAX_LENGTH:-96}"
ALIGN_STEPS="${ALIGN_STEPS:-0}"
ALIGN_BATCH="${ALIGN_BATCH:-64}"
ALIGN_HOLDOUT="${ALIGN_HOLDOUT:-256}"
ALIGN_EVENTS="${ALIGN_EVENTS:-0}"
read -r -a SWITCH <<< "${SWITCHES:-}"
if [ -n "$TOKENIZER" ] && [ -n "$STUDENT" ]; then
    echo "continue: error: TOKENIZER=$TOKENIZER gives the teacher a new text encoder; distil a new student (STUDENT=)" >&2; exit 2
fi
if { [ "$ALIGN_STEPS" != 0 ] || [ ${#SWITCH[@]} -gt 0 ]; } && [ -n "$STUDENT" ]; then
    echo "continue: error: ALIGN_STEPS / SWITCHES change the teacher's conditioning; distil a new student (STUDENT=)" >&2; exit 2
fi
if [ "$ALIGN_STEPS" != 0 ] && [ "$LATENTS" != 1 ]; then
    echo "continue: error: ALIGN_STEPS needs the corpus's cached latents (LATENTS=1)" >&2; exit 2
fi
if [ -n "$TOKENIZER" ] && [ "$TOKENIZER" != corpus ] && [ ! -f "$TOKENIZER/tokenizer.json" ]; then
    echo "continue: error: TOKENIZER=$TOKENIZER is neither 'corpus' nor a tokenizer folder (tokenizer.json missing)" >&2; exit 2
fi
for m in "$TEACHER" ${STUDENT:+"$STUDENT"}; do
    [ -f "$m/config.json" ] || { echo "continue: error: $m is not a model folder (config.json missing)" >&2; exit 2; }
done
SHARD_SIZE=$(( CLIPS / (2 * WORKERS) > 0 ? CLIPS / (2 * WORKERS) : 1 ))
mkdir -p "$OUT"
T0=$(date +%s)
stamp() { echo "[continue $(( $(date +%s) - T0 ))s] $*"; }

stage_data() {  # $1 corpus folder, $2 clips, $3 shard size; a corpus named by DATA is used as it is
    if [ -n "$DATA_GIVEN" ] && [ "$1" = "$DATA" ]; then
        [ -d "$1" ] || { echo "continue: error: DATA=$1 does not exist" >&2; exit 2; }
        return 0
    fi
    $RUN audiox-data synth --out "$1" --clips "$2" --seed "$SEED" --shard-size "$3" --workers "$WORKERS" --quiet
}
stage_latents() {  # the teacher's frozen encoder over the corpus $1, once (skips cached shards)
    [ "$LATENTS" = 1 ] || return 0
    $RUN audiox-train encode-latents --config mini device="$DEVICE" init_from="$TEACHER" data.shards="$1" \
        data.batch_size="$BATCH" log.progress=false
}
stage_teacher() {  # $1 corpus, $2 out folder, $3 minutes; warm-up over ~30 steps, then SCHEDULE
    $RUN audiox-train --config mini device="$DEVICE" init_from="$TEACHER" data.shards="$1" data.batch_size="$BATCH" \
        "${CACHE[@]}" data.num_workers="$WORKERS" optim.lr="$LR" "${SCHED[@]}" \
        ema.decay=0.995 log.val_every=0 log.sample_every=0 \
        log.tensorboard=false max_steps=1000000 max_minutes="$3" log.progress="$PROGRESS" \
        checkpoint.every=50 checkpoint.dir="$2/teacher-run" "${SWITCH[@]}" --out "$2/teacher"
}
stage_distill() {  # $1 corpus, $2 out folder, $3 minutes, $4 teacher; DMD2's 1 student : 5 fake updates
    local REG=() pairs
    if [ "$GUIDED_WEIGHT" != 0 ]; then  # the student's only objective: no fake model, no discriminator, no pairs
        REG=(dmd.weight=0 gan.enabled=false guided.weight="$GUIDED_WEIGHT" guided.scale="$GUIDED_SCALE" \
            guided.states="$GUIDED_STATES")
    elif [ "$REG_WEIGHT" != 0 ]; then  # DMD's regression pairs, one folder per teacher's weights (resumes)
        pairs="$2/pairs-$(sha256sum "$4/model.safetensors" | cut -c1-12)"
        $RUN audiox-distill pairs --teacher "$4" --out "$pairs" --batches "$REG_BATCHES" --steps "$REG_STEPS" \
            --config paper device="$DEVICE" data.shards="$1" data.batch_size="$DISTILL_BATCH" "${CACHE[@]}" \
            data.num_workers="$WORKERS"
        REG=(regression.weight="$REG_WEIGHT" regression.pairs="$pairs" regression.steps="$REG_MODE" \
            regression.shuffle="$REG_SHUFFLE")
    fi
    $RUN audiox-distill --teacher "$4" "${CONT[@]}" --config paper --export "$2/student" \
        --run-dir "$2/distill-run" device="$DEVICE" deepspeed.enabled=false data.shards="$1" \
        data.batch_size="$DISTILL_BATCH" "${CACHE[@]}" data.num_workers="$WORKERS" dmd.student_updates=1 \
        dmd.fake_updates=5 dmd.weight="$DM_WEIGHT" optim.lr="$DISTILL_LR" schedule.warmup=0.9 ema.decay="$DISTILL_EMA" \
        gan.num_blocks=4 gan.weight="$GAN_WEIGHT" \
        gan.match_rms="$GAN_MATCH_RMS" gan.head="$GAN_HEAD" "${REG[@]}" log.every=5 \
        log.tensorboard=false max_steps=1000000 max_minutes="$3" log.progress="$PROGRESS" checkpoint.every=20
}
stage_tokenizer() {  # $1 corpus, $2 out folder: the teacher with a fresh T5 over the tokenizer -> $2/teacher-retok
    local tok="$TOKENIZER"
    if [ "$tok" = corpus ]; then
        tok="$2/tokenizer"
        [ -f "$tok/tokenizer.json" ] || $RUN audiox-data tokenizer "$1" --out "$tok"
    fi
    [ -f "$2/teacher-retok/config.json" ] || \
        $RUN $PYTHON recipes/retokenize.py "$TEACHER" "$tok" "$2/teacher-retok" --max-length "$TEXT_MAX_LENGTH"
}
stage_align() {  # $1 corpus, $2 out folder: the teacher with its T5 pretrained against the audio -> $2/teacher-aligned
    [ -f "$2/teacher-aligned/config.json" ] || $RUN audiox-train text-align "$TEACHER" "$1" --out "$2/teacher-aligned" \
        --steps "$ALIGN_STEPS" --batch-size "$ALIGN_BATCH" --holdout "$ALIGN_HOLDOUT" --device "$DEVICE" \
        --event-crops "$ALIGN_EVENTS" --ckpt-dir "$2/align-run"
}
run_all() {  # $1 corpus, $2 out folder, $3 clips, $4 shard size, $5 teacher minutes, $6 distill minutes
    stamp "data: $1"; stage_data "$1" "$3" "$4"
    local TEACHER="$TEACHER"
    if [ -n "$TOKENIZER" ]; then stamp "tokenizer: $TOKENIZER"; stage_tokenizer "$1" "$2"; TEACHER="$2/teacher-retok"; fi
    stamp "latents: LATENTS=$LATENTS"; stage_latents "$1"
    if [ "$ALIGN_STEPS" != 0 ]; then stamp "text-align: $ALIGN_STEPS steps"; stage_align "$1" "$2"; TEACHER="$2/teacher-aligned"; fi
    NEW_TEACHER="$TEACHER"
    if [ "$5" != 0 ]; then stamp "teacher: $5 min from $TEACHER"; stage_teacher "$1" "$2" "$5"; NEW_TEACHER="$2/teacher"
    elif [ -f "$2/teacher/config.json" ]; then stamp "teacher: TEACHER_MIN=0, the earlier run's $2/teacher"; NEW_TEACHER="$2/teacher"; fi
    if [ "$6" != 0 ]; then stamp "distill: $6 min against $NEW_TEACHER${STUDENT:+, continuing $STUDENT}"; stage_distill "$1" "$2" "$6" "$NEW_TEACHER"; fi
}

if [ "${PRECHECK:-0}" = 1 ]; then  # every stage for seconds on a tiny corpus of its own: fail fast, before the long run
    P="$OUT/precheck"; rm -rf "$P"
    stamp "precheck"
    ( BATCH=2 DISTILL_BATCH=2 ALIGN_BATCH=2 ALIGN_HOLDOUT=2 REG_BATCHES=1 REG_STEPS=2; [ "$ALIGN_STEPS" = 0 ] || ALIGN_STEPS=2; run_all "$P/data" "$P" $(( 4 * WORKERS )) 2 0.05 0.05 )
    rm -rf "$P"
    stamp "precheck passed"
fi
run_all "$DATA" "$OUT" "$CLIPS" "$SHARD_SIZE" "$TEACHER_MIN" "$DISTILL_MIN"
stamp "export: half precision (Linear weights: $QUANTIZE) + model cards"
ALIGN_NOTE=""; [ "$ALIGN_STEPS" = 0 ] || ALIGN_NOTE=" ALIGN_STEPS=$ALIGN_STEPS ALIGN_BATCH=$ALIGN_BATCH ALIGN_EVENTS=$ALIGN_EVENTS"
CORPUS="DATA=$DATA"; [ -n "$DATA_GIVEN" ] || CORPUS="CLIPS=$CLIPS SEED=$SEED"  # a rendered corpus: how to render it again
RECIPE="TEACHER=$TEACHER STUDENT=$STUDENT $CORPUS${TOKENIZER:+ TOKENIZER=$TOKENIZER TEXT_MAX_LENGTH=$TEXT_MAX_LENGTH}$ALIGN_NOTE${SWITCHES:+ SWITCHES=\"$SWITCHES\"} TEACHER_MIN=$TEACHER_MIN DISTILL_MIN=$DISTILL_MIN LR=$LR SCHEDULE=$SCHEDULE DISTILL_LR=$DISTILL_LR GAN_WEIGHT=$GAN_WEIGHT GAN_MATCH_RMS=$GAN_MATCH_RMS GAN_HEAD=$GAN_HEAD DM_WEIGHT=$DM_WEIGHT DISTILL_EMA=$DISTILL_EMA REG_WEIGHT=$REG_WEIGHT REG_BATCHES=$REG_BATCHES REG_STEPS=$REG_STEPS REG_MODE=$REG_MODE REG_SHUFFLE=$REG_SHUFFLE GUIDED_WEIGHT=$GUIDED_WEIGHT GUIDED_SCALE=$GUIDED_SCALE GUIDED_STATES=$GUIDED_STATES BATCH=$BATCH DISTILL_BATCH=$DISTILL_BATCH bash recipes/continue.sh"
$RUN $PYTHON recipes/model_card.py --out "$OUT" --seconds $(( $(date +%s) - T0 )) --quantize "$QUANTIZE" \
    --data "$DATA" --continues teacher="$TEACHER" ${STUDENT:+--continues student="$STUDENT"} --recipe "$RECIPE"
if [ "${INSTALL:-0}" = 1 ]; then
    for pair in "student-fp16:$PKG" "teacher-fp16:$PKG/teacher"; do
        src="$OUT/${pair%%:*}" dst="${pair#*:}"
        [ -d "$src" ] || continue
        for f in config.json model.safetensors MODEL_CARD.md; do cp "$src/$f" "$dst/$f.new" && mv "$dst/$f.new" "$dst/$f"; done
        rm -rf "$dst/tokenizer.new"  # a corpus tokenizer travels with the weights; a byt5 model has none
        if [ -d "$src/tokenizer" ]; then cp -r "$src/tokenizer" "$dst/tokenizer.new" && rm -rf "$dst/tokenizer" && mv "$dst/tokenizer.new" "$dst/tokenizer"
        else rm -rf "$dst/tokenizer"; fi
    done
    stamp "installed into $PKG"
fi
stamp "done: $OUT/teacher-fp16 $OUT/student-fp16 (judge them: audiox-bench suite --model teacher=... --model student=...)"
