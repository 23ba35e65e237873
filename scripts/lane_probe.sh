#!/usr/bin/env bash
# How the distilled runs of the synthetic benchmark's phase 2 share the two cores: seconds per
# step of XD-RCDepth with X-KD + D2-KD as two single-threaded processes (seeds 0 and 1, 40
# steps), then of three (the two seeds and LiRCDepth with its KD, 60 steps), on the
# benchmark's prepared data and teacher. Prints a JSON summary (medians of the 10-step
# windows of each run's train_log.jsonl; the three-process medians only over the windows that
# ended while all three ran) and writes it to OUT. About 15 minutes; run it on an otherwise
# idle machine.
#
#   bash scripts/lane_probe.sh [OUT]      (default docs/benchmarks/synthetic/lane_probe.json)
#
# PROFILE, STEPS_TWO and STEPS_THREE (cpu, 40, 60) exist for the test suite's tiny run.
set -euo pipefail
cd "$(dirname "$0")/.."
RC=${RC:-.venv/bin/rcdepth}
PY=${PY:-.venv/bin/python}
PREP=${PREP:-data/synth_v2_prep}
TEACHER_CKPT=${TEACHER_CKPT:-runs/synth_v2/teacher/best}
PROBE=${PROBE:-runs/lane_probe}
PROFILE=${PROFILE:-cpu}
STEPS_TWO=${STEPS_TWO:-40}
STEPS_THREE=${STEPS_THREE:-60}
OUT=${1:-docs/benchmarks/synthetic/lane_probe.json}
export OMP_NUM_THREADS=1
[ -f "$TEACHER_CKPT.json" ] || { echo "lane_probe: no teacher at $TEACHER_CKPT (run phase1)" >&2; exit 1; }
rm -rf "$PROBE"
mkdir -p "$PROBE"
probe() {  # probe RUN CONFIG STEPS [key=value ...]
  local run=$1 config=$2 steps=$3
  shift 3
  $RC train --config "config/train/$config.yaml" --profile "$PROFILE" --no-progress \
      data.root="$PREP" output_dir="$PROBE/$run" name="$run" schedule.max_steps="$steps" \
      teacher.checkpoint="$TEACHER_CKPT" "$@" > "$PROBE/$run.log" 2>&1
}
wait_all() {  # wait for every background probe; fail if any did
  local failed=0 pid
  for pid in $(jobs -p); do wait "$pid" || failed=1; done
  [ "$failed" = 0 ] || { echo "lane_probe: a probe run failed (logs in $PROBE)" >&2; exit 1; }
}
probe two_kd_s0 xdrcdepth_kd "$STEPS_TWO" seed=0 &
probe two_kd_s1 xdrcdepth_kd "$STEPS_TWO" seed=1 &
wait_all
probe three_kd_s0 xdrcdepth_kd "$STEPS_THREE" seed=0 &
probe three_kd_s1 xdrcdepth_kd "$STEPS_THREE" seed=1 &
probe three_lircdepth_kd lircdepth_kd "$STEPS_THREE" &
wait_all
$PY - "$PROBE" "$OUT" "$PROFILE" <<'PYEOF'
import json, statistics, sys
from pathlib import Path
from rcdepth_ros.training.config import PROFILES
probe, out, profile = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
def windows(run):
    return [json.loads(line) for line in (probe / run / 'train_log.jsonl').open()]
# The three processes ran together until the first of them ended (its last window's end).
three = ('three_kd_s0', 'three_kd_s1', 'three_lircdepth_kd')
end = min(windows(r)[-1]['seconds'] for r in three)
def median(run, until=None):
    w = [x['seconds_per_step'] for x in windows(run) if until is None or x['seconds'] <= until]
    return round(statistics.median(w), 3)
two_kd = round(statistics.median([median('two_kd_s0'), median('two_kd_s1')]), 3)
three_kd = round(statistics.median([median('three_kd_s0', end), median('three_kd_s1', end)]), 3)
three_lir = median('three_lircdepth_kd', end)
result = {
    'what': 'seconds per optimiser step (medians over the logged windows), single-threaded '
            f'processes on 2 cores, profile {profile}',
    'two_processes': {'xdrcdepth_kd': two_kd},
    'three_processes': {'xdrcdepth_kd': three_kd, 'lircdepth_kd': three_lir},
    'xdrcdepth_kd_slowdown_three_vs_two': round(three_kd / two_kd, 3),
    'phase2_hours': None,
}
# Phase 2 of the benchmark (the cpu profile's steps per run): the three together until
# LiRCDepth KD ends, then the two XD-RCDepth seeds finish as two processes.
steps = PROFILES['cpu']['all']['schedule.max_steps']
if three_lir <= three_kd:
    lir_end = steps * three_lir
    result['phase2_hours'] = round((lir_end + (steps - lir_end / three_kd) * two_kd) / 3600, 2)
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(json.dumps(result, indent=1) + '\n')
print(json.dumps(result, indent=1))
PYEOF
