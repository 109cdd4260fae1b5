#!/usr/bin/env bash
# Re-runs the whole study of README "The study": the T5-CR ablation at laptop
# scale on the real data in ../shared/data.
#
#   bash scripts/run_study.sh                 # everything, CPU, about 3 h
#   SEEDS="0" MIXTURES="redial_only" bash scripts/run_study.sh   # one run
#
# Steps (each skipped when its output exists, so a killed study resumes):
#   1. prepare the TFDS datasets (full ReDial, ml-latest-small);
#   2. build the probe sets from ml-latest-small (600 random pairs each);
#   3. train each mixture x seed (gin/experiments/study_<mixture>.gin);
#   4. evaluate each on the first EVAL_EXAMPLES ReDial test examples
#      (generation metrics), the probes, and, for seed 0, the ranking
#      protocols over the first RANK_EXAMPLES examples (200: 127 samples
#      over 93 turns, de-duplicated 113 over 86; about 20 CPU-seconds per
#      turn for the tiny model on this CPU);
#   5. eval.report: Markdown table and PNG plots in $OUT/report.
#
# Environment: OUT (default /tmp/t5cr_study), SHARED (../shared/data),
# SEEDS ("0 1 2"), MIXTURES (the four study mixtures), EVAL_EXAMPLES (500),
# RANK_EXAMPLES (200), TFDS_DATA_DIR (~/tensorflow_datasets).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-/tmp/t5cr_study}
SHARED=${SHARED:-../shared/data}
SEEDS=${SEEDS:-"0 1 2"}
MIXTURES=${MIXTURES:-"redial_only redial_sequences redial_tags t5cr_no_reviews"}
EVAL_EXAMPLES=${EVAL_EXAMPLES:-500}
RANK_EXAMPLES=${RANK_EXAMPLES:-200}
TFDS_DATA_DIR=${TFDS_DATA_DIR:-$HOME/tensorflow_datasets}
export TFDS_DATA_DIR JAX_PLATFORMS=${JAX_PLATFORMS:-cpu}
mkdir -p "$OUT"
log() { echo "[$(date +%H:%M:%S)] $*"; }

# 1. Data.
if [[ ! -f "$OUT/prepared" ]]; then
  log "preparing TFDS data in $TFDS_DATA_DIR"
  python -m crs_tasks.prepare --data_dir="$TFDS_DATA_DIR" \
    --redial_dir="$SHARED/redial" --movielens_dir="$SHARED/movielens" \
    --movielens_source=ml-latest-small
  touch "$OUT/prepared"
fi

# 2. Probes.
if [[ ! -f "$OUT/probes/stats.json" ]]; then
  log "building probes"
  python -m crs_tasks.build_probes \
    --movielens_dir="$SHARED/movielens/ml-latest-small" \
    --build_dir="$OUT/probes" --max_pairs=600
fi

# 3-4. Train and evaluate.
dirs=() labels=()
for mixture in $MIXTURES; do
  for seed in $SEEDS; do
    dir="$OUT/${mixture}_s${seed}"
    dirs+=("$dir") labels+=("$mixture")
    if [[ ! -d "$dir/checkpoints/600" ]]; then
      log "training $mixture seed $seed -> $dir"
      python -m train.main --gin_file="gin/experiments/study_${mixture}.gin" \
        --gin.MODEL_DIR="'$dir'" --gin.RANDOM_SEED="$seed" \
        --gin.DATA_SEED="$seed" 2>"$dir.train.log"
    fi
    if [[ ! -f "$dir/eval/600/metrics.json" ]]; then
      log "evaluating $dir"
      ranking=()
      if [[ "$seed" == "0" && "$RANK_EXAMPLES" != "0" ]]; then
        ranking=(--gin.MOVIE_LIST="'$SHARED/redial/movies_with_mentions.csv'"
                 --gin.RANKING_EXAMPLES="$RANK_EXAMPLES")
      fi
      python -m eval.main --gin_file=gin/runs/eval.gin \
        --gin.CHECKPOINT_PATH="'$dir'" \
        --gin.MIXTURE_OR_TASK_NAME="'crs_redial_v002'" \
        --gin.NUM_EXAMPLES="$EVAL_EXAMPLES" \
        --gin.TASK_FEATURE_LENGTHS="{'inputs': 128, 'targets': 32}" \
        --gin.input_pipeline.DatasetConfig.batch_size=32 \
        --gin.PROBE_DIR="'$OUT/probes'" "${ranking[@]}" 2>"$dir.eval.log"
    fi
  done
done

# 5. Report.
log "writing the report"
python -m eval.report --model_dirs="$(IFS=,; echo "${dirs[*]}")" \
  --labels="$(IFS=,; echo "${labels[*]}")" --output_dir="$OUT/report"
log "done: $OUT/report/report.md"
