#!/usr/bin/env bash
# The prepared GPU check (issue 18): unpack the carried onnxruntime-gpu, then run scripts/bench_gpu.py.
# Carrying the wheel to a GPU machine is described in DEVELOPERS.md. Writes $OUT/gpu_check.json and
# $OUT/gpu_check.log (OUT defaults to ./out/gpu_check). On a machine without a GPU it runs the same
# code on the CPU provider with short timings (a smoke test of this script): EDGE_GPU_CHECK_DEVICE=cpu.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu_check}
mkdir -p "$OUT"
DEVICE=${EDGE_GPU_CHECK_DEVICE:-cuda}
MODELS=${EDGE_GPU_CHECK_MODELS:-dev-gpu3/models}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
start=$(date +%s)
{
  echo "gpu_check: device=$DEVICE python=$($PY --version 2>&1) $(date -u +%FT%TZ)"
  if [ "$DEVICE" = cuda ]; then
    # 1. the onnxruntime-gpu wheel's contents, carried as an xz tarball in parts (DEVELOPERS.md)
    want=$(awk '{print $1}' dev-gpu3/ort.sha256)
    got=$(cat dev-gpu*/ort.part0* | sha256sum | awk '{print $1}')
    [ "$want" = "$got" ] || { echo "FAILED: onnxruntime-gpu tarball checksum $got != $want"; exit 2; }
    rm -rf /tmp/ortgpu && mkdir -p /tmp/ortgpu
    cat dev-gpu*/ort.part0* | xz -d -T0 | tar -x -C /tmp/ortgpu || { echo "FAILED: unpack"; exit 2; }
    echo "unpacked onnxruntime-gpu in $(( $(date +%s) - start )) s"
    # 2. the small pure-Python dependencies edge imports, if the image lacks them
    if ! $PY -c "import pydantic, paho.mqtt, zmq" 2>/dev/null; then
      $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site dev-gpu3/whl/*.whl
    fi
    export PYTHONPATH=/tmp/ortgpu:/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
    # 3. the GPU build must win over the image's CPU onnxruntime; cuDNN/cuBLAS come from nvidia-* wheels
    $PY - <<'PY' || { echo "FAILED: onnxruntime-gpu does not load"; exit 2; }
import onnxruntime as ort
ort.preload_dlls()
print("onnxruntime", ort.__version__, ort.__file__)
print("providers", ort.get_available_providers())
assert "CUDAExecutionProvider" in ort.get_available_providers(), "not the GPU build"
PY
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
    # preload_dlls() must run in the benchmark's own process too
    export EDGE_ORT_PRELOAD=1
    $PY scripts/bench_gpu.py --device cuda --models "$MODELS/yolov8n.onnx" "$MODELS/yolo11n_320.onnx" --video "$MODELS/pedestrians.mp4" \
      --out "$OUT/gpu_check.json" "$@"
  else
    $PY scripts/bench_gpu.py --device cpu --models "$MODELS/yolov8n.onnx" "$MODELS/yolo11n_320.onnx" \
      --video "$MODELS/pedestrians.mp4" --out "$OUT/gpu_check.json" \
      --batches 1 4 --rounds 1 --runs 3 --seconds 0.5 --cameras 4 "$@"
  fi
  echo "gpu_check: done in $(( $(date +%s) - start )) s"
} 2>&1 | tee "$OUT/gpu_check.log"
