#!/usr/bin/env bash
# The CUDA path on a real GPU, as one prepared check: see `bash tools/device_check.sh --help`.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CARRY_DIR=.device_check      # data and weights that travel (git-ignored)
WHEEL_DIR=.whl               # the Python packages the device image lacks, as wheels (git-ignored)
CARRY_LIMIT=$((64 * 1024 * 1024))

usage() {
  cat <<'EOF'
usage: bash tools/device_check.sh prepare
       bash tools/device_check.sh run [--device cuda|cpu] [--out DIR] [--budget S] [--models "M1 M2 ..."]
       bash tools/device_check.sh --help

One prepared check of everything in pepr that only a GPU exercises: mixed precision (bf16 autocast, and
fp16 with a GradScaler), GPU energy from NVML (measured, not estimated), GPU peak memory, the input-size
policy at the paper's 256 px, Dask GPU resources, and what the records and the checker make of them.

prepare   (here, with pip and PyPI)  downloads the wheels of the packages the device image lacks
          (papermill, jupyter's kernel stack, medmnist, dask/distributed, ...: tools/device_check.py
          packages) into .whl/, copies pneumoniamnist.npz, dermamnist.npz and the ImageNet weights of
          tf_efficientnet_lite0 into .device_check/ (from PEPR_DATA_DIR / PEPR_WEIGHTS_DIR, default
          ../shared), checks that what travels stays under 64 MiB, and prints the device call to make:
              run(command="bash tools/device_check.sh run --device cuda",
                  carry=[".whl", ".device_check"], timeout_s=600)

run       (on the device machine; --device cpu runs the same steps here, tiny, to test the check itself)
          1. env       nvidia-smi and library versions
          2. install   the carried wheels into /tmp/site (PYTHONPATH), if papermill, dask or medmnist is missing
          3. warm      PneumoniaMNIST decoded and resized to the grid's size once, so no run times it
          4. nb02      notebook 02_train by papermill: resnet18d from scratch, PneumoniaMNIST 28 px, 3 epochs
          5. nb03      notebook 03_finetune: tf_efficientnet_lite0 from ImageNet, DermaMNIST 28 px, 3 epochs
          6. amp       train.loop's steps with bf16 autocast and with fp16 + GradScaler (forced), on the GPU
          7. grid      a sample of paper.yaml (10 of its models, 2M-133M parameters, PneumoniaMNIST at
                       256 px, 25% of the training split, 2 epochs) by `pepr grid run --scheduler` on a
                       Dask scheduler and one worker started with `--resources GPU=1`
          8. check     tools/device_check.py check: per run the energy method (NVML or an estimate), AMP,
                       GPU peak memory, epoch times, test accuracy against the majority floor; seconds per
                       image against parameters (log-log) and the full paper grid's hours and kWh on
                       one such GPU
          Writes to $OUT (the device tool's folder; else --out, else outputs/device_check/) at most 8
          files: summary.md, summary.json, runs.csv, timing.tsv, log.txt, env.txt, nvidia-smi.txt and
          records.tar.gz (result.json, grid_run.json, history.csv and executed notebooks; no weights).
          Exit status 0 when every check passed, 1 when one failed.
          --device cpu: the same steps at 28 px, 1 epoch, 5% of the data, two small models; the checker
          must then find the energy *estimated* (a CPU result never passes as NVML) and AMP off.
          --budget S: wall seconds for the whole run (default 480 on cuda, 1800 on cpu); the grid gets
          what the earlier steps left (runs still pending are reported, the grid resumes on a rerun).
          Work files go to $DEVICE_CHECK_WORK (default /tmp/pepr-device-check), emptied first.

Environment: PYTHON (default .venv/bin/python where it exists, else python3), PEPR_DATA_DIR and
PEPR_WEIGHTS_DIR (used when .device_check/ is absent).
EOF
}

python_bin() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"
  elif [ -x "$ROOT/.venv/bin/python" ]; then echo "$ROOT/.venv/bin/python"
  else echo python3; fi
}

# ------------------------------------------------------------------------------------------- prepare
cmd_prepare() {
  local py shared data weights
  py=$(python_bin)
  shared="$ROOT/../shared"
  data=${PEPR_DATA_DIR:-$shared/data}
  weights=${PEPR_WEIGHTS_DIR:-$shared/weights}
  cd "$ROOT" || exit 2
  echo "== wheels of the packages the device image lacks -> $WHEEL_DIR/"
  rm -rf "$WHEEL_DIR" && mkdir -p "$WHEEL_DIR"
  "$py" tools/device_check.py packages > "$WHEEL_DIR/packages.txt" || exit 2
  # shellcheck disable=SC2046
  "$py" -m pip download -q $("$py" tools/device_check.py packages --pip-args --dest "$WHEEL_DIR") || {
    echo "device_check: pip download failed (is PyPI reachable from here?)" >&2; exit 2; }
  echo "   $(ls "$WHEEL_DIR"/*.whl | wc -l) wheels, $(du -sh "$WHEEL_DIR" | cut -f1)"
  echo "== data and weights -> $CARRY_DIR/"
  rm -rf "$CARRY_DIR" && mkdir -p "$CARRY_DIR/data" "$CARRY_DIR/weights"
  for f in pneumoniamnist.npz dermamnist.npz; do
    cp "$data/$f" "$CARRY_DIR/data/" || { echo "device_check: $data/$f missing (set PEPR_DATA_DIR)" >&2; exit 2; }
  done
  cp "$weights/tf_efficientnet_lite0.safetensors" "$CARRY_DIR/weights/" || {
    echo "device_check: $weights/tf_efficientnet_lite0.safetensors missing (set PEPR_WEIGHTS_DIR)" >&2; exit 2; }
  local tree carried total
  tree=$(git ls-files -z -co --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
  carried=$(du -sb "$WHEEL_DIR" "$CARRY_DIR" | awk '{s += $1} END {print s}')
  total=$((tree + carried))
  echo "== what travels: working tree $((tree / 1024)) KiB + carried $((carried / 1024)) KiB = $((total / 1048576)) MiB (limit 64 MiB)"
  if [ "$total" -gt "$CARRY_LIMIT" ]; then
    echo "device_check: over the device tool's 64 MiB; leave something out" >&2; exit 2
  fi
  cat <<EOF
== ready. The device call (one call; the check ends within its --budget of 480 s):
   run(command="bash tools/device_check.sh run --device cuda",
       carry=["$WHEEL_DIR", "$CARRY_DIR"], timeout_s=600)
   then read summary.md among the files it brings back.
EOF
}

# ------------------------------------------------------------------------------------------- run
DEADLINE=0
remaining() { echo $((DEADLINE - $(date +%s))); }

# step NAME CAP_SECONDS COMMAND...: run COMMAND (a program or one of this script's functions) under a time
# limit (CAP or what the budget leaves, less RESERVE for the checker), log it and add
# "NAME<TAB>seconds<TAB>rc" to the step table.
step() {
  local name=$1 cap=$(( $2 * CAP_SCALE )) left t0 ms rc
  shift 2
  left=$(( $(remaining) - RESERVE ))
  [ "$cap" -gt "$left" ] && cap=$left
  if [ "$cap" -lt 5 ]; then
    echo "== $name: skipped, the budget is spent"
    printf '%s\t%s\t%s\n' "$name" 0 skipped >> "$WORK/steps.tsv"
    return 1
  fi
  echo "== $name (limit ${cap} s): $*"
  t0=$(date +%s%N)
  if declare -F "$1" >/dev/null; then  # a function: run it in a bash that has it (timeout runs programs)
    timeout --kill-after=10 "$cap" bash -c "$(declare -f "$1"); \"\$@\"" "$name" "$@"
  else
    timeout --kill-after=10 "$cap" "$@"
  fi
  rc=$?
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  printf '%s\t%d.%d\t%s\n' "$name" $((ms / 1000)) $((ms % 1000 / 100)) "$rc" >> "$WORK/steps.tsv"
  [ "$rc" -eq 124 ] && echo "== $name: stopped at its limit of ${cap} s"
  return "$rc"
}

gpu_state() {  # what nvidia-smi says now (or that there is none)
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi
    nvidia-smi --query-gpu=name,driver_version,pstate,power.draw,power.limit,memory.used,memory.total,clocks.sm,temperature.gpu --format=csv
  else
    echo "nvidia-smi: not found (no NVIDIA GPU on this machine)"
  fi
}

env_info() {
  "$PY" -c "import sys, torch; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda,
'available', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
  "$PY" -m pip list 2>/dev/null
}

install_wheels() {
  if "$PY" -c "import papermill, distributed, medmnist, ipykernel" 2>/dev/null; then
    echo "papermill, distributed, medmnist and ipykernel import already: nothing to install"
    return 0
  fi
  ls "$ROOT/$WHEEL_DIR"/*.whl >/dev/null 2>&1 || {
    echo "device_check: packages missing and no wheels in $WHEEL_DIR/ (run 'prepare' first, carry .whl)" >&2; return 2; }
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$ROOT/$WHEEL_DIR"/*.whl || return 2
  "$PY" -c "import papermill, distributed, medmnist, ipykernel; print('installed into /tmp/site')"
}

grid_on_dask() {  # scheduler + one worker with a GPU resource, the grid through --scheduler, then both stopped
  local port=$((20000 + RANDOM % 20000)) sched worker runner="" rc
  "$PY" -m distributed.cli.dask_scheduler --host 127.0.0.1 --port "$port" --no-dashboard \
    > "$WORK/dask-scheduler.log" 2>&1 &
  sched=$!
  "$PY" -m distributed.cli.dask_worker "tcp://127.0.0.1:$port" --nworkers 1 --nthreads 1 --resources GPU=1 \
    --no-dashboard --name gpu-worker > "$WORK/dask-worker.log" 2>&1 &
  worker=$!
  trap 'kill $runner "$worker" "$sched" 2>/dev/null' TERM INT
  "$PY" tools/device_check.py workers "tcp://127.0.0.1:$port" -o "$WORK/dask_workers.json" || true
  "$PY" -m pepr_utils.cli grid run "$WORK/device_check.yaml" --scheduler "tcp://127.0.0.1:$port" \
    --timeout "$RUN_TIMEOUT" --no-progress &
  runner=$!
  wait "$runner"
  rc=$?
  trap - TERM INT
  kill "$worker" 2>/dev/null; wait "$worker" 2>/dev/null
  kill "$sched" 2>/dev/null; wait "$sched" 2>/dev/null
  "$PY" -m pepr_utils.cli grid status "$WORK/device_check.yaml" || true
  return "$rc"
}

cmd_run() {
  local device=cuda out="" budget="" models=""
  while [ $# -gt 0 ]; do
    case $1 in
      --device) device=$2; shift 2 ;;
      --out) out=$2; shift 2 ;;
      --budget) budget=$2; shift 2 ;;
      --models) models=$2; shift 2 ;;
      -h|--help) usage; exit 0 ;;
      *) echo "device_check: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
  done
  case $device in cuda|cuda:[0-9]*|cpu) ;; *) echo "device_check: --device must be cuda or cpu" >&2; exit 2 ;; esac
  OUT_DIR=${out:-${OUT:-$ROOT/outputs/device_check}}
  WORK=${DEVICE_CHECK_WORK:-/tmp/pepr-device-check}
  mkdir -p "$OUT_DIR" || exit 2
  rm -rf "$WORK" && mkdir -p "$WORK/nb" || exit 2
  exec > >(tee "$OUT_DIR/log.txt") 2>&1
  PY=$(python_bin)
  export PY WORK ROOT WHEEL_DIR RUN_TIMEOUT
  local nb_epochs nb_fraction grid_args
  if [ "$device" = cpu ]; then
    budget=${budget:-1800}; nb_epochs=1; nb_fraction=0.05; RUN_TIMEOUT=600; CAP_SCALE=4  # a CPU is slower
  else
    budget=${budget:-480}; nb_epochs=3; nb_fraction=1.0; RUN_TIMEOUT=120; CAP_SCALE=1
  fi
  export RUN_TIMEOUT
  RESERVE=25
  DEADLINE=$(( $(date +%s) + budget ))
  cd "$ROOT" || exit 2
  export PYTHONPATH="/tmp/site:$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg \
    PEPR_OFFLINE=1 HF_HUB_OFFLINE=1 PEPR_OUTPUT_DIR="$WORK/outputs" PEPR_CACHE_DIR="$WORK/cache"
  if [ -d "$ROOT/$CARRY_DIR/data" ]; then export PEPR_DATA_DIR="$ROOT/$CARRY_DIR/data"; fi
  if [ -d "$ROOT/$CARRY_DIR/weights" ]; then export PEPR_WEIGHTS_DIR="$ROOT/$CARRY_DIR/weights"; fi
  printf 'step\tseconds\trc\n' > "$WORK/steps.tsv"
  echo "device check on $device, budget ${budget} s, python $PY, work $WORK, out $OUT_DIR"
  echo "data ${PEPR_DATA_DIR:-unset}, weights ${PEPR_WEIGHTS_DIR:-unset}"

  gpu_state > "$OUT_DIR/nvidia-smi.txt" 2>&1
  step env 60 env_info > "$OUT_DIR/env.txt" 2>&1
  step install 120 install_wheels || { echo "device_check: cannot install the carried wheels" >&2; }
  grid_args=(--device "$device")
  [ -n "$models" ] && grid_args+=(--models $models)
  "$PY" tools/device_check.py grid "${grid_args[@]}" -o "$WORK/device_check.yaml" >/dev/null
  local size
  size=$(awk '/^  size:/ {print $2}' "$WORK/device_check.yaml")
  step warm 120 "$PY" tools/device_check.py warm --size "$size" --datasets pneumoniamnist
  step nb02 150 "$PY" -m papermill --cwd "$WORK/nb" notebooks/02_train.ipynb "$WORK/nb/02_train.ipynb" \
    -p model resnet18d -p dataset pneumoniamnist -p size 28 -p fraction "$nb_fraction" -p epochs "$nb_epochs" \
    -p device "$device" -p out_dir "$WORK/nb/02_train"
  step nb03 150 "$PY" -m papermill --cwd "$WORK/nb" notebooks/03_finetune.ipynb "$WORK/nb/03_finetune.ipynb" \
    -p model tf_efficientnet_lite0 -p dataset dermamnist -p size 28 -p fraction "$nb_fraction" \
    -p epochs "$nb_epochs" -p weights imagenet -p mode full -p device "$device" -p out_dir "$WORK/nb/03_finetune"
  step amp 90 "$PY" tools/device_check.py amp --device "$device" -o "$WORK/amp.json"
  step grid 100000 grid_on_dask
  cp "$WORK/steps.tsv" "$OUT_DIR/timing.tsv"

  echo "== check"
  local extra=()
  [ -d "$WORK/outputs/device_check/runs" ] && extra=(--sample "$WORK/outputs/device_check/runs")
  "$PY" tools/device_check.py check "$WORK/nb" "${extra[@]}" --device "$device" --steps "$WORK/steps.tsv" \
    --amp "$WORK/amp.json" --workers "$WORK/dask_workers.json" --out "$OUT_DIR"
  local rc=$?
  gpu_state >> "$OUT_DIR/nvidia-smi.txt" 2>&1
  tar -czf "$OUT_DIR/records.tar.gz" -C "$WORK" --exclude='*.safetensors' --exclude='*.npz' \
    nb outputs steps.tsv device_check.yaml $(cd "$WORK" && ls dask-*.log dask_workers.json amp.json 2>/dev/null) 2>/dev/null
  echo "== device check done in $(( $(date +%s) - DEADLINE + budget )) s: exit $rc ($([ $rc -eq 0 ] && echo PASS || echo FAIL)); files in $OUT_DIR"
  return "$rc"
}

case ${1:-} in
  -h|--help|help|"") usage; [ -n "${1:-}" ] || exit 2 ;;
  prepare) shift; cmd_prepare "$@" ;;
  run) shift; cmd_run "$@" ;;
  *) echo "device_check: unknown command ${1} (see --help)" >&2; exit 2 ;;
esac
