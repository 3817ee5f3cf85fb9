#!/bin/sh
# Short comparative fine-tuning experiments (issue 13, point 2): every variant starts from the published
# DNS3 weights with the same seed, schedule, step count and validation, and differs in one data option.
#   scripts/experiments.sh SHARED_DIR STEPS BATCH [VARIANT ...]
# e.g. scripts/experiments.sh ../shared 60 8            (all variants, one after the other, on a CPU)
#      EXTRA="--set data.workers=14" scripts/experiments.sh /data/shared 2000 32 base babble   (a GPU burst)
# Runs go to runs/exp_VARIANT/; score them with rtenhance eval on dev/ and the held-out set.
# RESUME=N continues the runs from their last.pt and stops them at step N (instead of STEPS).
set -eu
SHARED=$1 STEPS=$2 BATCH=$3
shift 3
start="--init-from $SHARED/reference/gtcrn_dns3.tar"
[ -n "${RESUME:-}" ] && start="--resume --max-steps $RESUME"
VARIANTS=${*:-base babble codec premixed direct_target}
for v in $VARIANTS; do
  case $v in
    base) extra="" ;;
    babble) extra="--set augment.babble_prob=0.3" ;;
    codec) extra="--set augment.codec_prob=0.3" ;;
    premixed) extra="--set data.premixed_steps=$((STEPS / 4))" ;;  # each fixed batch seen 4 times
    direct_target) extra="--set augment.early_ms=2" ;;  # target: direct path only (no early reflections)
    no_level_eq) extra="--set augment.level_dbfs=[-26,-26] --set augment.speech_eq_prob=0" ;;
    *) echo "unknown variant $v" >&2; exit 2 ;;
  esac
  # shellcheck disable=SC2086
  python -m rtenhance train --config config/train.yaml --no-progress $start \
    --set name="exp_$v" --set data.clean_dir="$SHARED/data/train/clean" --set data.noise_dir="$SHARED/data/train/noise" \
    --set data.rir_dir="$SHARED/data/train/rir" --set batch_size="$BATCH" --set max_steps="$STEPS" \
    --set optim.lr=0.0001 --set optim.warmup_steps=$((STEPS / 4)) --set optim.half_life_steps=100000 \
    --set optim.ema_decay=0.98 --set val_every="$STEPS" --set checkpoint_every=20 --set val_pesq=false \
    --set threads=1 $extra ${EXTRA:-}
done
