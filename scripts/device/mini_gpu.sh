#!/usr/bin/env bash
# Run recipes/mini.sh on a lent GPU machine that has no network and its own python3 (torch, triton, transformers,
# numpy, scipy...): the few missing wheels travel in .whl/, the workspace's sources go on PYTHONPATH, the audiox-*
# commands become shims. Results come back through $OUT (bundle parts, log). Budget: SECONDS_MAX.
set -uo pipefail
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 OMP_NUM_THREADS=1
OUTDIR="${OUT:-/tmp/out}"; mkdir -p "$OUTDIR"
START=$(date +%s)
[ "${SKIP_WHEELS:-0}" = 1 ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH="/tmp/site:$(ls -d "$PWD"/packages/*/src | paste -sd:)"
mkdir -p /tmp/bin
for n in data train distill bench; do printf '#!/bin/sh\nexec python3 -m audiox.%s.cli "$@"\n' "$n" > /tmp/bin/audiox-$n; done
chmod +x /tmp/bin/*; export PATH="/tmp/bin:$PATH"
nvidia-smi -L; df -h /dev/shm | tail -1; nproc
python3 -c "import torch, av, soundfile, webdataset, open_clip, pretty_midi; print('torch', torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')" || exit 4
# JOB=mini (default): the whole recipe. JOB=continue: recipes/continue.sh (TEACHER_MIN, DISTILL_MIN) from the carried
# bundled teacher, so GPU minutes add to the bundled models instead of starting over. JOB=decoder: recipes/decoder.sh's
# training only (SWAP=0) from the bundled autoencoder extracted beforehand into .dec/ae0.safetensors (carried; the bundled weights stay here, see README.md);
# the fine-tuned autoencoder comes back as $OUT/ae.safetensors for recipes/swap_decoder.py replace.
# JOB=continue TOKENIZER=corpus: the teacher first gets a fresh T5 over a BPE learned from the run's corpus;
# ALIGN_STEPS=N pretrains that T5 against the audio (audiox-train text-align); SWITCHES="model.maf.single_null=true ...".
if [ "${JOB:-mini}" = decoder ]; then
    mkdir -p /tmp/run && cp .dec/ae0.safetensors /tmp/run/ae0.safetensors || exit 5
    SWAP=0 PROGRESS=false RUN= PYTHON=python3 DEVICE="${DEVICE:-cuda}" timeout $(( ${SECONDS_MAX:-540} - 25 )) bash recipes/decoder.sh /tmp/run 2>&1 | tee "$OUTDIR/log.txt" | grep -v 'Warning\|warn('
    rc=${PIPESTATUS[0]}
    [ -f /tmp/run/ae.safetensors ] && cp /tmp/run/ae.safetensors "$OUTDIR/ae.safetensors"
elif [ "${JOB:-mini}" = continue ]; then
    # recipes/continue.sh from the bundled teacher, carried as .cont/teacher (README.md: the bundled student does not
    # fit beside it and the wheels, so the student is distilled afresh from the new teacher unless .cont/student is
    # there)
    [ -f .cont/teacher/config.json ] || { echo "JOB=continue needs .cont/teacher (carried)"; exit 5; }
    STUDENT=""; [ -f .cont/student/config.json ] && STUDENT=.cont/student
    # a new text encoder or conditioning (TOKENIZER=corpus, ALIGN_STEPS=N, SWITCHES=...): the student is distilled afresh
    [ -n "${TOKENIZER:-}${SWITCHES:-}" ] && STUDENT=""
    LAT=0; [ "${ALIGN_STEPS:-0}" != 0 ] && { STUDENT=""; LAT=1; }  # text-align reads cached latents: one encode pass
    TEACHER=.cont/teacher STUDENT="$STUDENT" LATENTS=$LAT AUDIOX_KERNELS="${AUDIOX_KERNELS:-reference}" PROGRESS=false RUN= \
        PYTHON=python3 PRECHECK=1 DEVICE="${DEVICE:-cuda}" timeout $(( ${SECONDS_MAX:-540} - 50 )) \
        bash recipes/continue.sh /tmp/run 2>&1 | tee "$OUTDIR/log.txt" | grep -v 'Warning\|warn('
    rc=${PIPESTATUS[0]}
    if [ ! -d /tmp/run/teacher-fp16 ] && [ -f /tmp/run/teacher/config.json ]; then  # cut short after the teacher: keep it
        timeout 40 python3 recipes/model_card.py --out /tmp/run --seconds $(( $(date +%s) - START )) --quantize int8 \
            --data /tmp/run/data --continues teacher=.cont/teacher --recipe "JOB=continue bash scripts/device/mini_gpu.sh (cut short: rc $rc)" \
            2>&1 | tee -a "$OUTDIR/log.txt"
    fi
else
    # LATENTS=0: on a GPU the autoencoder's encode is a few ms per batch and the loader still decodes the audio, so
    # a cache pass would only cost recipe time (it is what makes a CPU run practical).
    LATENTS="${LATENTS:-0}" AUDIOX_KERNELS="${AUDIOX_KERNELS:-reference}" PROGRESS=false RUN= PYTHON=python3 PRECHECK=1 DEVICE="${DEVICE:-cuda}" timeout $(( ${SECONDS_MAX:-540} - 25 )) bash recipes/mini.sh /tmp/run 2>&1 | tee "$OUTDIR/log.txt" | grep -v 'Warning\|warn('
    rc=${PIPESTATUS[0]}
fi
echo "recipe rc=$rc after $(( $(date +%s) - START ))s"
[ -d /tmp/run/teacher-fp16 ] && python3 scripts/device/pack.py pack /tmp/run "$OUTDIR"
left=$(( ${SECONDS_MAX:-540} - ($(date +%s) - START) ))
if [ "$left" -gt 80 ]; then  # the compiled Triton kernels against PyTorch on the real GPU, as time allows (about 70 s).
    # Not tests/test_kernels_triton.py: that file runs Triton's CPU interpreter, which the image's triton 3.6 rejects.
    timeout $(( left - 10 )) python3 scripts/device/kernels_check.py 2>&1 | grep -v 'Warn' | tee "$OUTDIR/kernels.txt"
fi
exit $rc
