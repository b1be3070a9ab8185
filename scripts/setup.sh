#!/usr/bin/env bash
# One-command setup on a fresh Debian/Ubuntu machine: system packages, a virtualenv in .venv with edge and
# its dev tools, and a model. Safe to run again. Usage: bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: mosquitto (events), GStreamer's RTSP server (demo + tests serve video over real RTSP),
# ffmpeg, Prometheus and Chromium (integration tests), systemd-analyze (unit checks).
APT_PACKAGES=(
  python3-venv python3-gi gir1.2-gst-rtsp-server-1.0
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav
  ffmpeg mosquitto mosquitto-clients openssl prometheus chromium systemd
)
if command -v apt-get >/dev/null 2>&1; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "setup: installing system packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  echo "setup: not a Debian system; install these yourself: ${APT_PACKAGES[*]}" >&2
fi

# A local broker for the demo (the Debian package normally starts one; containers have no init).
if ! (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
  echo "setup: starting mosquitto on 127.0.0.1:1883"
  mosquitto -d -c /etc/mosquitto/mosquitto.conf || true
fi

PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "setup: Python >= 3.11 is required (found $("$PYTHON" --version 2>&1))" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# OpenVINO is the fastest CPU runtime (docs/benchmarks.md): installed by default where there is no NVIDIA GPU,
# so `backend: auto` picks it. EDGE_OPENVINO=1 installs it anyway, EDGE_OPENVINO=0 never.
extras="dev"
if [ "${EDGE_OPENVINO:-}" = 1 ] || { [ "${EDGE_OPENVINO:-}" != 0 ] && ! { [ -e /proc/driver/nvidia/version ] ||
    nvidia-smi -L >/dev/null 2>&1; }; }; then
  extras="dev,openvino"
fi
echo "setup: installing edge with extras [$extras]"
.venv/bin/python -m pip install -q -e ".[$extras]"

# A model: edge never downloads one by itself (license and size); see models/README.md.
model=""
for dir in "${EDGE_MODELS:-}" models ../shared/models; do
  if [ -n "$dir" ] && [ -f "$dir/yolov8n.onnx" ]; then model="$dir/yolov8n.onnx"; break; fi
done
if [ -n "$model" ]; then
  echo "setup: model found at $model"
else
  echo "setup: no yolov8n.onnx found in \$EDGE_MODELS, ./models or ../shared/models." >&2
  echo "       Export one with: .venv/bin/python scripts/export_model.py yolov8n.pt (see models/README.md)" >&2
fi
echo "setup: done. Try: .venv/bin/edge --help"
