#!/usr/bin/env bash
# Every GPU check of rcdepth_ros in one prepared command, for a machine with an NVIDIA GPU.
#
#   bash scripts/device_check.sh [--dry-run] [--out DIR] [--data PREPARED] [--wheels DIR]
#
# Writes everything to DIR (default: $OUT, else device_check_out/): one log per step,
# bench_*.json, train_*.json, node_*.json and summary.md (one line per step: ok, FAIL,
# TIMEOUT or skipped, with the reason). Steps, each under its own time limit so the whole
# run fits in 8 minutes:
#   0. install what is missing (onnxruntime-gpu for the CUDA provider; rclpy and the rest
#      from --wheels DIR when given: pip --no-index --find-links), 1. nvidia-smi,
#   2. pytest -m cuda, 3. rcdepth bench at 896x1600 and 352x704, fp32 and fp16, every
#      variant, torch and onnxruntime (CUDA provider where it installed),
#   4. 100 AMP (float16 + GradScaler) training steps of the teacher, then of XD-RCDepth with
#      KD from it (step time, peak memory, finite and falling loss),
#   5. a 2-process DDP (NCCL) smoke run if there are 2 GPUs, else a note,
#   6. rcdepth bench-node at 896x1600 on cuda (the node end to end over ROS topics).
# --data names a prepared folder with a train split (rcdepth prepare); without it a small
# synthetic world is simulated and prepared first (CPU, about a minute).
# --dry-run: the same steps on CPU at tiny sizes and a few steps (no installs, no GPU); the
# test suite runs it (test/test_device_check.py) so this script cannot rot.
# Exit code: 0 when no step failed (skipped steps are not failures), else 1.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

dry=0; out="${OUT:-}"; data=""; wheels=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry=1 ;;
    --out) out="$2"; shift ;;
    --data) data="$2"; shift ;;
    --wheels) wheels="$2"; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "device_check: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
out="${out:-$root/device_check_out}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
if [ -n "${PYTHON:-}" ]; then py="$PYTHON"
elif [ -x "$root/.venv/bin/python" ]; then py="$root/.venv/bin/python"
else py="python3"; fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA ROS_LOG_DIR="$out/ros_log"
rc="$py -m rcdepth_ros.cli"
summary="$out/summary.md"
failures=0
start_all=$(date +%s)

if [ "$dry" = 1 ]; then
  device=cpu; sizes=(--size 64x96 --size 32x64); variants="xdrcdepth lircdepth"
  runs=(--runs 2 --warmup 1); steps=4; crop=(64 128); batch=2; node_size=64x96; frames=3
  precisions="fp32 fp16"; limits=(install=60 smi=10 pytest=300 bench=240 prepare=240 train=300 ddp=120 node=240)
else
  device=cuda; sizes=(--size 896x1600 --size 352x704)
  variants="cafnet lircdepth xdrcdepth xdrcdepth_wide xdrcdepth_add xdrcdepth_concat xdrcdepth_attention"
  runs=(--runs 30 --warmup 5); steps=100; crop=(352 704); batch=4; node_size=896x1600; frames=30
  # Limits add up to 480 s (8 min) with the preparation; --data PREPARED saves that minute.
  precisions="fp32 fp16"; limits=(install=25 smi=5 pytest=35 bench=120 prepare=60 train=60 ddp=30 node=60)
fi
limit() {  # the step's limit in seconds; bench_896x1600 gets 60 % of the bench time
  local kv name="${1%%_*}" size="${1#*_}"
  for kv in "${limits[@]}"; do
    if [ "${kv%%=*}" = "$name" ]; then
      local v="${kv#*=}"
      if [ "$name" = bench ]; then
        if [ "$size" = "${sizes[1]}" ]; then echo $((v * 6 / 10)); else echo $((v * 4 / 10)); fi
      else echo "$v"; fi
    fi
  done
}

{
  echo "# device check $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "mode: $([ $dry = 1 ] && echo 'dry run (CPU, tiny sizes)' || echo GPU); python: $py"
  echo
} > "$summary"
note() { echo "- $*" | tee -a "$summary"; }

# step NAME CMD...: run under the step's time limit, log to NAME.log, one summary line.
step() {
  local name="$1"; shift
  local t0=$(date +%s) code
  timeout --kill-after=5 "$(limit "$name")" "$@" > "$out/$name.log" 2>&1
  code=$?
  local took=$(( $(date +%s) - t0 ))
  if [ $code = 0 ]; then note "$name: ok (${took} s)"
  elif [ $code = 124 ] || [ $code = 137 ]; then
    note "$name: TIMEOUT after ${took} s (log: $name.log)"; failures=$((failures + 1))
  else
    note "$name: FAIL, exit $code after ${took} s: $(tail -n 1 "$out/$name.log")"
    failures=$((failures + 1))
  fi
  return $code
}
has() { "$py" -c "import $1" > /dev/null 2>&1; }
cuda_provider() {
  "$py" -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())" \
    > /dev/null 2>&1
}

# 0. installs: only what is missing; nothing in a dry run.
pip_install() { "$py" -m pip install -q --disable-pip-version-check "$@"; }
if [ "$dry" = 1 ]; then
  note "install: skipped (dry run)"
else
  wheel_args=()
  [ -n "$wheels" ] && wheel_args=(--no-index --find-links "$wheels")
  if ! cuda_provider; then
    # onnxruntime-gpu replaces the CPU wheel's files of the same module.
    step install_ort pip_install "${wheel_args[@]}" onnxruntime-gpu==1.31.1 \
      || note "onnxruntime CUDA provider: not installed, ORT GPU cases will be left out"
  fi
  missing=()
  for pair in rclpy:'ros-rclpy[fastrtps]==9.1.2' rosbags:rosbags==0.11.9 \
              sensor_msgs:ros-sensor-msgs==5.5.1 safetensors:safetensors==0.8.0 \
              onnx:onnx==1.23.2; do
    has "${pair%%:*}" || missing+=("${pair#*:}")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    step install_deps pip_install "${wheel_args[@]}" "${missing[@]}" \
      || note "some of ${missing[*]} did not install: the steps that need them say so"
  fi
fi

# 1. the GPU
if [ "$dry" = 1 ]; then note "smi: skipped (dry run)"
elif command -v nvidia-smi > /dev/null; then step smi nvidia-smi
else note "smi: FAIL, no nvidia-smi"; failures=$((failures + 1)); fi
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else '', 'gpus', torch.cuda.device_count())" \
  | tee -a "$out/smi.log" | sed 's/^/- /' >> "$summary"

# 2. the tests marked cuda (they skip on a machine without CUDA, as in the dry run)
step pytest "$py" -m pytest -q -m cuda -p no:cacheprovider test/test_cuda.py

# 3. network latency: every variant, fp32 and fp16, torch and onnxruntime in one run per size
ort_backend=onnxruntime
if [ "$dry" = 0 ] && ! cuda_provider; then ort_backend=""; note "bench: onnxruntime left out (no CUDA provider)"; fi
# One run per size, so a slow size cannot take the other's figures with it.
for ((i = 1; i < ${#sizes[@]}; i += 2)); do
  size="${sizes[$i]}"
  step "bench_$size" $rc bench --variants $variants --backends torch $ort_backend \
    --precision $precisions --size "$size" "${runs[@]}" --device "$device" \
    --json "$out/bench_$size.json" --quiet
done

# 4. AMP training steps: teacher, then XD-RCDepth distilled from it
if [ -z "$data" ]; then
  data="$out/prepared"
  if [ ! -d "$data/train" ]; then
    world="$out/world"
    step prepare bash -c "$rc sim --out '$world' --scenes 2 --seed 5 --duration 3 \
      --image-scale $([ $dry = 1 ] && echo 0.15 || echo 0.5) --cameras CAM_FRONT \
      --camera-sweeps none --workers 2 --no-progress && $rc prepare --dataroot '$world' \
      --version v1.0-sim --split train --out '$data' --accumulate-sweeps 2 --workers 2 --no-progress"
  fi
fi
train() {  # train NAME CONFIG [extra args]
  local name="$1" config="$2"; shift 2
  rm -rf "${out:?}/runs/$name"
  step "train_$name" "$py" -m rcdepth_ros.devcheck train --config "$config" --data "$data" \
    --out "$out/runs/$name" --steps "$steps" --device "$device" --crop "${crop[@]}" \
    --batch "$batch" --amp-dtype float16 "$@"
  tail -n 1 "$out/train_$name.log" > "$out/train_$name.json"
  "$py" - "$out/train_$name.json" >> "$summary" 2> /dev/null <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
peak = '-' if r['peak_mem_mb'] is None else f"{r['peak_mem_mb']:.0f} MB"
print(f"  - {r['config']}: {r['steps']} steps on {r['device_name']}, AMP {r['amp']} "
      f"({r['amp_dtype']}, GradScaler {r['grad_scaler']}), median step {r['median_step_ms']:.1f} ms, "
      f"peak {peak}, loss {r['loss_first']:.3f} -> {r['loss_last']:.3f}, finite {r['finite']}, "
      f"falling {r['falling']}")
EOF
}
train teacher teacher --save
train xdrcdepth_kd xdrcdepth_kd --teacher "$out/runs/teacher"

# 5. DDP over two processes
gpus=$("$py" -c "import torch; print(torch.cuda.device_count())" 2> /dev/null || echo 0)
if [ "$dry" = 1 ]; then
  step ddp "$py" -m rcdepth_ros.devcheck ddp --data "$data" --out "$out/runs/ddp" --steps 2 \
    --device cpu --crop 64 128 --batch 1
elif [ "$gpus" -ge 2 ]; then
  step ddp "$py" -m rcdepth_ros.devcheck ddp --data "$data" --out "$out/runs/ddp" --steps 4 \
    --device cuda --crop 352 704 --batch 2
else
  note "ddp: skipped, $gpus GPU(s) on this machine (a 2-process NCCL run needs 2)"
fi

# 6. the node end to end on the GPU
if has rclpy; then
  step node $rc bench-node --size "$node_size" --frames "$frames" --device "$device" \
    --timeout 90 --json "$out/node_${node_size}.json"
else
  note "node: skipped, rclpy is not importable here (pass the ROS 2 wheels with --wheels DIR)"
fi

note "total: $(( $(date +%s) - start_all )) s, $failures failed step(s)"
cat "$summary"
[ "$failures" = 0 ]
