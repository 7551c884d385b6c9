#!/bin/bash
# One device run: CUDA smoke checks of ask/infer, then pDPO stages over many questions on the GPU
# (under accelerate launch: one process per GPU, NPROC of them), then DPO training variants in
# parallel on the pairs. Everything lands in $OUT. (Before 2026-12 the stages ran through
# scripts/pdpo_sharded.py, a process pool with a deadline, since retired.)
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
# A killed run keeps what it wrote (the stages resume); one DPO step checks the launch's training too.
timeout ${DEADLINE:-300} python3 -m accelerate.commands.launch --multi_gpu --num_processes ${NPROC:-1} \
  -m salmonn_o1 train pdpo --config recipes/mini-pdpo.yaml run.out_dir=$R pdpo.questions.n=${QUESTIONS:-448} \
  optim.max_steps=1 model.source=src/salmonn_o1/assets/mini 2>&1 | tail -20
el "stages done"
tar czf $OUT/stages.tgz -C $R --exclude=./shards .
el "stages packed"
train() { # name lr beta
  timeout ${TRAIN_S:-170} python3 -m salmonn_o1 train pdpo --config recipes/mini-pdpo.yaml pdpo.pairs=$R/stages/pairs.jsonl \
    optim.max_steps=${MAX_STEPS:-600} model.source=src/salmonn_o1/assets/mini run.out_dir=$R optim.lr=$2 pdpo.beta=$3 data.num_workers=3 \
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
