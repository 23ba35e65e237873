#!/usr/bin/env bash
# The synthetic benchmark of the README, sized for a 2-core CPU machine (about 1 h 25 min: 15 min
# of data, 1 h 10 min of training; the `cpu` profile of rcdepth_ros/training/config.py).
#
#   bash scripts/synthetic_benchmark.sh [key=value ...]   # world -> prepare -> train x9 -> eval
#
# Two lanes of single-threaded runs share the two cores: the teacher beside the four students
# that need no teacher, then the two distilled students side by side. Results land in
# $RUNS/<run>/test_metrics.json and $RUNS/results.md. Arguments are extra training overrides
# for every run; without any, the script reproduces the README table.
set -euo pipefail
cd "$(dirname "$0")/.."
RC=${RC:-.venv/bin/rcdepth}
DATA=${DATA:-data/synth}
PREP=${PREP:-data/synth_prep20}
RUNS=${RUNS:-runs/synth}
OVERRIDES=("$@")
mkdir -p "$RUNS"

# 1. World: 12 scenes of 8 s (split 8/2/2 by splits.json), CAM_FRONT at 360 x 640, five radars.
if [ ! -d "$DATA/v1.0-sim" ]; then
  $RC sim --out "$DATA" --scenes 12 --seed 7 --duration 8 --cameras CAM_FRONT \
      --camera-sweeps none --no-progress
fi
# 2. Samples: +-20 LiDAR sweeps (+-1 s) for the accumulated GT instead of nuScenes' 80, and
#    half of the training scenes' keyframes (shard 0 of 2), to fit the preparation in minutes.
prep() { $RC prepare --dataroot "$DATA" --version v1.0-sim --out "$PREP" \
             --accumulate-sweeps 20 --workers 2 --no-progress "$@"; }
prep --split val
prep --split test
prep --split train --shard 0/2

# 3. Training, one thread a run: train RUN CONFIG [key=value ...] -> $RUNS/RUN
train() {
  local run=$1 config=$2
  shift 2
  OMP_NUM_THREADS=1 $RC train --config "config/train/$config.yaml" --profile cpu --no-progress \
      data.root="$PREP" output_dir="$RUNS/$run" "$@" "${OVERRIDES[@]}" > "$RUNS/$run.log" 2>&1
}
TEACHER=teacher.checkpoint="$RUNS/teacher/best"
train teacher teacher &
(train xdrcdepth_nokd xdrcdepth_nokd && train lircdepth_nokd lircdepth_nokd \
    && train camera_only camera_only && train xdrcdepth_wide_nokd xdrcdepth_wide_nokd) &
wait
train xdrcdepth_kd xdrcdepth_kd "$TEACHER" &
train lircdepth_kd lircdepth_kd "$TEACHER" &
wait
# Ablation of XD-RCDepth's two KD terms (same config, one weight set to zero).
train xdrcdepth_kd_only_xkd xdrcdepth_kd "$TEACHER" loss.d2kd=0 &
train xdrcdepth_kd_only_d2kd xdrcdepth_kd "$TEACHER" loss.xkd=0 &
wait

# 4. SPEC 5 evaluation on the test split (never used for selection), and the table.
for run in teacher lircdepth_nokd lircdepth_kd xdrcdepth_nokd xdrcdepth_kd xdrcdepth_kd_only_xkd \
    xdrcdepth_kd_only_d2kd xdrcdepth_wide_nokd camera_only; do
  $RC eval --checkpoint "$RUNS/$run" --data "$PREP" --split test \
      --json "$RUNS/$run/test_metrics.json" > "$RUNS/$run/test_metrics.txt"
done
.venv/bin/python -m rcdepth_ros.training.report "$RUNS" | tee "$RUNS/results.md"
