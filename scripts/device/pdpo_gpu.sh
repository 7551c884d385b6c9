#!/bin/bash
# One device run: CUDA smoke checks of ask/infer, then pDPO stages over many questions on the GPU
# (sharded over processes), then DPO training variants in parallel. Everything lands in $OUT.
# Usage (device tool): copy the pinned wheels (pip download --no-deps transformers==5.24.0 av==18.1.0) into
# .whl/, then run `bash scripts/device/pdpo_gpu.sh` with carry [".whl"]. Seen 2026-11-30 on one H200: see docs/mini-model.md.
export PYTHONUNBUFFERED=1
T0=$(date +%s)
el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -m pip install --quiet --no-deps --no-index --target /tmp/pylib .whl/*.whl 2>&1 | tail -2
export PYTHONPATH=/tmp/pylib:$PWD/src
python3 -c "import torch,transformers,av;print('torch',torch.__version__,'transformers',transformers.__version__,'av',av.__version__,'cuda',torch.cuda.is_available())"
el "env ready"
S=src/salmonn_o1/assets/sample
Q=$(python3 -c "import json;d=json.load(open('$S/item.json'));print(d['question'])")
OPTS=$(python3 -c "import json,shlex;d=json.load(open('$S/item.json'));print(' '.join(shlex.quote(o) for o in d['options']))")
for dt in float32 bfloat16; do
  eval timeout 60 python3 -m salmonn_o1 ask --device cuda --dtype $dt --json $S/clip.mp4 "\"$Q\"" --options $OPTS >> $OUT/ask_cuda.txt 2>&1; echo "ask cuda $dt rc=$?" | tee -a $OUT/ask_cuda.txt
done
el "ask done"
R=/tmp/run
python3 scripts/pdpo_sharded.py --config recipes/mini-pdpo.yaml --out $R --workers ${WORKERS:-14} --threads 1 \
  --shard-size ${SHARD_SIZE:-32} --shards 400 --stop-new-after ${STOP_NEW:-230} --deadline ${DEADLINE:-300} --no-train \
  model.source=src/salmonn_o1/assets/mini 2>&1 | tail -20
el "stages done"
tar czf $OUT/stages.tgz -C $R --exclude=./shards .
el "stages packed"
train() { # name lr beta
  timeout ${TRAIN_S:-170} python3 scripts/pdpo_sharded.py --config recipes/mini-pdpo.yaml --out $R --train-only --max-steps ${MAX_STEPS:-600} \
    model.source=src/salmonn_o1/assets/mini run.out_dir=$R optim.lr=$2 pdpo.beta=$3 data.num_workers=3 \
    run.save_every=1000 > $R/train.log 2>&1
  echo "train $1 rc=$?"
}
# Each variant trains in its own copy of the stages (the trainer writes into run.out_dir).
for v in "a 5e-5 0.1" "b 2e-5 0.1" "c 5e-5 0.5"; do
  set -- $v; mkdir -p /tmp/run_$1; cp -r $R/stages /tmp/run_$1/
  (R=/tmp/run_$1; train $1 $2 $3; tail -c 1500 $R/train.log; tar cf $OUT/final_$1.tar -C $R $(ls -d $R/final $R/metrics.jsonl 2>/dev/null | xargs -n1 basename) train.log) &
done
wait
el "all done"
ls -la $OUT
