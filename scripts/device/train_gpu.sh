#!/bin/bash
# DPO training on the GPU from stages made before (STAGES=stages.tgz of pdpo_gpu.sh), two variants in parallel.
export PYTHONUNBUFFERED=1
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
python3 -m pip install --quiet --no-deps --no-index --target /tmp/pylib .whl/transformers*.whl 2>&1 | tail -2
export PYTHONPATH=/tmp/pylib:$PWD/src
for v in "a 5e-5 0.1" "c 5e-5 0.5"; do
  set -- $v; R=/tmp/run_$1; mkdir -p $R; tar xzf ${STAGES:-.device/stages.tgz} -C $R
  (timeout ${TRAIN_S:-200} python3 -m salmonn_o1 train pdpo --config recipes/mini-pdpo.yaml run.out_dir=$R \
    pdpo.pairs=$R/stages/pairs.jsonl optim.max_steps=${MAX_STEPS:-600} \
    model.source=src/salmonn_o1/assets/mini optim.lr=$2 pdpo.beta=$3 data.num_workers=4 run.save_every=1000 > $R/train.log 2>&1;
   echo "train $1 rc=$?"; tail -c 600 $R/train.log; tar cf $OUT/final_$1.tar -C $R final metrics.jsonl train.log) &
done
wait; el done
