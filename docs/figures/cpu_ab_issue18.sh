#!/bin/bash
# One lock acquisition: detector bench old commit vs new tree (interleaved, 2 rounds); pipeline bench
# serial loop vs overlapped (same tree, BatchingDetector's overlap default flipped for the A run).
cd /work/main
PY=/work/main/.venv/bin/python
M=/work/shared/models
V=/work/shared/data/video/pedestrians.mp4
echo "start $(date -u +%T)"
for r in 1 2; do
  (cd /tmp/edge-old && $PY -m edge bench detector --model $M/yolo11n_320.onnx $M/yolov8n.onnx --batch 1 4 --runs 3 --video $V --json) > /tmp/ab/det_old_$r.json 2>/tmp/ab/det_old_$r.err
  $PY -m edge bench detector --model $M/yolo11n_320.onnx $M/yolov8n.onnx --batch 1 4 --runs 3 --backend onnxruntime --providers cpu --video $V --json > /tmp/ab/det_new_$r.json 2>/tmp/ab/det_new_$r.err
  echo "detector round $r $(date -u +%T)"
done
for mode in serial overlap; do
  $PY -c "
import sys, edge.detector_thread as t
t.BatchingDetector.__init__.__kwdefaults__['overlap'] = '$mode' == 'overlap'
from edge.__main__ import main
sys.exit(main(['bench','pipeline','--streams','2','--seconds','30','--warmup','10','--window','15','--backend','onnxruntime','--providers','cpu','--json']))
" > /tmp/ab/pipe_${mode}.json 2>/tmp/ab/pipe_${mode}.err
  echo "pipeline $mode $(date -u +%T)"
done
echo "end $(date -u +%T)"
