#!/usr/bin/env bash
# The one GPU check a lent machine runs (BENCHMARKS.md section 7), within BUDGET seconds in all (default 360, the
# installation included): install the carried wheels (made here by benchmarks/gpu_wheels.sh), then run
# benchmarks/gpu_validation.py with what is left; it skips any part that would not fit and writes its JSON after
# every network, and `timeout` stops it hard in case one overruns. Results go to $OUT (the device tool's folder).
# Priority order: our networks' steps, then the zoo part (MedNeXt, SegResNet, SwinUNETR at their M plans: allocated,
# reserved and nvidia-smi-equivalent peaks against ResEnc's; NVML: nvidia-ml-py, on the lent machines), then
# inference, calibration, compiled steps, the L preset, stock training.
#   run (device tool): carry .whl, command `BUDGET=360 bash benchmarks/gpu_check.sh`
set -uo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
BUDGET=${BUDGET:-360}
OUT=${OUT:-benchmark_output}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD"
fi
left=$(( BUDGET - ($(date +%s) - start) - 15 ))
echo "installed in $(( $(date +%s) - start )) s; ${left} s left for the measurements"
timeout $(( left + 10 )) python3 benchmarks/gpu_validation.py --budget-seconds "$left" \
    --output "$OUT/gpu_validation.json" "$@" 2>&1 | tee "$OUT/gpu_validation.log"
