#!/usr/bin/env bash
# The CUDA checks, in one script, for a machine with an NVIDIA GPU.
#
# Run from the repository root after `make install-dev`, in a venv whose torch is a
# CUDA build and with onnxruntime-gpu in place of onnxruntime (the CPU-only machines
# this project is developed on skip every CUDA path). It checks, in order:
#   1. the CUDA tests: training on the GPU in bf16 against the CPU, the teacher's
#      outputs cached across devices, and the CUDA provider's latency measurements;
#   2. a short study that trains on the GPU and times on the CPU (distill.device: cuda,
#      latency.device: cpu), the usual real case;
#   3. the same study timed on the GPU (latency.device: cuda, fp16 in the space).
# Each step prints what it ran; the script stops at the first failure.
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/gpu-check}

"$PY" - <<'EOF'
import onnxruntime, torch
assert torch.cuda.is_available(), "no CUDA device visible to torch (is torch a CUDA build?)"
print("torch", torch.__version__, "on", torch.cuda.get_device_name(0))
print("onnxruntime providers:", onnxruntime.get_available_providers())
EOF

echo "== 1. CUDA tests"
"$PY" -m pytest -q tests/test_device.py tests/test_latency.py

mkdir -p "$OUT"
cat > "$OUT/train-on-gpu.yaml" <<'EOF'
name: gpu-check
trials: 6
distill: {device: cuda, final_steps: 100}
EOF

echo "== 2. train on the GPU, time on the CPU"
"$PY" -m paretokd.cli run --study "$OUT/train-on-gpu.yaml" --budgets 10ms,20ms \
  --out "$OUT/cpu-latency"
grep -h '"trained_on"' "$OUT/cpu-latency/recommendations.json" | sort | uniq -c

echo "== 3. train and time on the GPU"
"$PY" -m paretokd.cli run --study "$OUT/train-on-gpu.yaml" --budgets 1ms,2ms \
  --device cuda --study-name gpu-check-cuda --out "$OUT/gpu-latency"
