#!/usr/bin/env bash
# Study 2 at GPU size: the same stages, probes, oracles, paired tests and
# curves as scripts/run_study2.sh, with T5 1.1 small (MODEL=small, 77M
# parameters) or base (MODEL=base, 248M), the paper's batch of 128 and
# lengths 512/128, 10,000 pretraining and 5,000 fine-tuning steps, one run
# at a time on the one accelerator.
#
#   bash scripts/run_study2_gpu.sh                  # T5 1.1 small
#   MODEL=base bash scripts/run_study2_gpu.sh
#
# Time estimate for one GPU (not measured here: no GPU was lent to this
# study's session). A train step costs about 6 x parameters x tokens
# FLOPs: small, 77M x 128 x 640 tokens = 3.8e13 FLOP; at 30% of an
# H100/H200's ~990 TFLOP/s bf16 dense peak about 0.13 s/step, so 10,000
# pretraining steps take ~22 min and each 5,000-step fine-tune ~11 min:
# pretraining + 10 runs + the evaluations ~3 h. Base is ~3.2x that (~9 h).
# In float32 (this project's default dtype) expect 2-4x longer.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-small}
export OUT=${OUT:-/tmp/t5cr_study2_$MODEL}
export JOBS=${JOBS:-1} PRETRAIN_STEPS=${PRETRAIN_STEPS:-10000}
export FINETUNE_STEPS=${FINETUNE_STEPS:-5000}
export CURVE_STEPS=${CURVE_STEPS:-"1000 2000 3000 4000"}
export EXTEND_STEPS=${EXTEND_STEPS:-10000}
export EXTEND_CURVE_STEPS=${EXTEND_CURVE_STEPS:-"7500 10000"}
export EVAL_LENGTHS="{'inputs': 512, 'targets': 128}"
export JAX_PLATFORMS=${JAX_PLATFORMS:-}  # Let JAX find the GPU.
# No spaces inside a flag: TRAIN_FLAGS is split on spaces.
export TRAIN_FLAGS="--gin_file=models/t5_1_1_$MODEL.gin --gin.BATCH_SIZE=128 \
--gin.TASK_FEATURE_LENGTHS={'inputs':512,'targets':128} \
--gin.CHECKPOINT_PERIOD=1000 --gin.LOG_PERIOD=100 --gin.EVAL_PERIOD=5000 \
--gin.ACTIVATION_DTYPE='bfloat16'"
exec bash scripts/run_study2.sh
