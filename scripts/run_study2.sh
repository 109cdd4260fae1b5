#!/usr/bin/env bash
# Study 2 (README, "The study"): T5-CR's ablation on this CPU, from a shared
# pretrained start, with in-format probes, oracles, paired tests and
# learning curves. Real data from ../shared/data.
#
#   bash scripts/run_study2.sh              # everything (2 cores: about 2 h)
#   STAGES="train" bash scripts/run_study2.sh
#
# Stages (STAGES, default all; each step is skipped when its output exists,
# so a killed study resumes where it stopped):
#   prepare  TFDS data: full ReDial (../shared/data/redial), ml-latest-small.
#   probes   the probe pairs (MAX_PAIRS per probe) in both readings
#            (dialogue format and the MovieLens tasks' own format) and their
#            oracle rows (eval.probes.main --oracles).
#   pretrain span corruption on training-side text
#            (gin/experiments/study2_pretrain.gin).
#   train    the runs (gin/experiments/study2_finetune.gin), JOBS at a time:
#            pilot: redial_only and redial_sequences, seed 0, from scratch;
#            ablation: redial_only, redial_sequences, redial_tags,
#            t5cr_no_reviews x SEEDS, from the pretrained start.
#   extend   the pilot's pretrained runs (redial_only, redial_sequences, seed
#            0) trained on to EXTEND_STEPS (3000) in place: do the curves
#            still climb after the ablation's 1,500 steps? And a diagnostic
#            run, sequences_only (the ML-sequences task alone, pretrained
#            start, seed 0): how far can this model learn the relation when
#            every step goes to it?
#   eval     every run's step-1500 checkpoint: generation metrics on the first
#            EVAL_EXAMPLES ReDial test examples, all probes; the pilot runs
#            (seed 0 of redial_only and redial_sequences, both starts) also
#            at every CURVE_STEPS checkpoint (CURVE_EXAMPLES examples) for the
#            learning curves, the extended ones at EXTEND_CURVE_STEPS too;
#            ranking on RANK_EXAMPLES examples for seed 0 (0: no ranking).
#   rank     Recall@k over all 6,916 movies (both protocols) on the first
#            RANK_STUDY_EXAMPLES (400) test examples, every ablation run at
#            FINETUNE_STEPS (seed 0 of each mixture first), in
#            <run>/eval_rank/<step>; then the popularity and repeat-context
#            baselines on the same examples and the ranking table and plot
#            (scripts/study2_ranking.py) in $OUT/report_ranking.
#   report   eval.report: tables, McNemar p-values, oracle rows, curves, in
#            $OUT/report (ablation, against redial_only_pt), report_pilot
#            (against redial_sequences_scratch) and report_3000 (the
#            extended runs at EXTEND_STEPS).
#
# Environment: OUT (/tmp/t5cr_study2), SHARED (../shared/data), SEEDS
# ("0 1"), MIXTURES (the four), PILOT ("redial_only redial_sequences"; ""
# for none), JOBS (2), PRETRAIN_STEPS (1500), FINETUNE_STEPS (1500),
# TRAIN_FLAGS (extra train.main flags for every run, e.g. a larger model:
# scripts/run_study2_gpu.sh), MAX_PAIRS (600), EVAL_EXAMPLES (500), CURVE_EXAMPLES
# (200), CURVE_STEPS ("250 500 1000"), EXTEND_STEPS (3000),
# EXTEND_CURVE_STEPS ("2000 3000"), EVAL_LENGTHS (128/32), RANK_EXAMPLES
# (0), TFDS_DATA_DIR (~/tensorflow_datasets).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-/tmp/t5cr_study2}
SHARED=${SHARED:-../shared/data}
SEEDS=${SEEDS:-"0 1"}
JOBS=${JOBS:-2}
MAX_PAIRS=${MAX_PAIRS:-600}
EVAL_EXAMPLES=${EVAL_EXAMPLES:-500}
CURVE_EXAMPLES=${CURVE_EXAMPLES:-200}
CURVE_STEPS=${CURVE_STEPS:-"250 500 1000"}
RANK_EXAMPLES=${RANK_EXAMPLES:-0}
EXTEND_STEPS=${EXTEND_STEPS:-3000}
PRETRAIN_STEPS=${PRETRAIN_STEPS:-1500}
FINETUNE_STEPS=${FINETUNE_STEPS:-1500}
TRAIN_FLAGS=${TRAIN_FLAGS:-}
EVAL_LENGTHS=${EVAL_LENGTHS:-"{'inputs': 128, 'targets': 32}"}
EXTEND_CURVE_STEPS=${EXTEND_CURVE_STEPS:-"2000 3000"}
RANK_STUDY_EXAMPLES=${RANK_STUDY_EXAMPLES:-400}
STAGES=${STAGES:-"prepare probes pretrain train extend eval rank report"}
TFDS_DATA_DIR=${TFDS_DATA_DIR:-$HOME/tensorflow_datasets}
export TFDS_DATA_DIR JAX_PLATFORMS=${JAX_PLATFORMS:-cpu}
mkdir -p "$OUT"
log() { echo "[$(date +%H:%M:%S)] $*"; }
stage() { [[ " $STAGES " == *" $1 "* ]]; }
task_of() {  # mixture -> registered name
  case $1 in
    redial_only) echo crs_redial_only_v002 ;;
    sequences_only) echo crs_small_ml_sequences_v001 ;;
    *) echo "crs_small_$1_v002" ;;
  esac
}
MIXTURES=${MIXTURES:-"redial_only redial_sequences redial_tags t5cr_no_reviews"}
PILOT=${PILOT-"redial_only redial_sequences"}  # PILOT="": no pilot runs
runs() {  # "<mixture> <start> <seed>" lines: pilot first, then the ablation
  for m in $PILOT; do echo "$m scratch 0"; done
  for s in $SEEDS; do for m in $MIXTURES; do echo "$m pt $s"; done; done
}

if stage prepare && [[ ! -f "$OUT/prepared" ]]; then
  log "preparing TFDS data in $TFDS_DATA_DIR"
  python -m crs_tasks.prepare --data_dir="$TFDS_DATA_DIR" \
    --redial_dir="$SHARED/redial" --movielens_dir="$SHARED/movielens" \
    --movielens_source=ml-latest-small
  touch "$OUT/prepared"
fi

if stage probes && [[ ! -f "$OUT/probes/oracles.json" ]]; then
  log "building probes and their oracle rows"
  python -m crs_tasks.build_probes \
    --movielens_dir="$SHARED/movielens/ml-latest-small" \
    --build_dir="$OUT/probes" --max_pairs="$MAX_PAIRS"
  python -m eval.probes.main --probe_dir="$OUT/probes" \
    --movielens_dir="$SHARED/movielens/ml-latest-small" --oracles
fi

if stage pretrain && [[ ! -d "$OUT/pretrain/checkpoints/$PRETRAIN_STEPS" ]]
then
  log "pretraining -> $OUT/pretrain"
  # shellcheck disable=SC2086
  python -m train.main --gin_file=gin/experiments/study2_pretrain.gin \
    $TRAIN_FLAGS --gin.TRAIN_STEPS="$PRETRAIN_STEPS" \
    --gin.MODEL_DIR="'$OUT/pretrain'" > "$OUT/pretrain.out" 2>&1
fi

train_one() {  # mixture start seed
  local dir="$OUT/$1_$2_s$3" init=None
  [[ -d "$dir/checkpoints/$FINETUNE_STEPS" ]] && return 0
  [[ "$2" == pt ]] && init="'$OUT/pretrain'"
  log "training $dir"
  # shellcheck disable=SC2086
  python -m train.main --gin_file=gin/experiments/study2_finetune.gin \
    $TRAIN_FLAGS --gin.TRAIN_STEPS="$FINETUNE_STEPS" \
    --gin.MIXTURE_OR_TASK_NAME="'$(task_of "$1")'" \
    --gin.INITIAL_CHECKPOINT_PATH="$init" --gin.MODEL_DIR="'$dir'" \
    --gin.RANDOM_SEED="$3" --gin.DATA_SEED="$3" > "$dir.out" 2>&1
  log "trained $dir"
}
export -f train_one log task_of
export OUT FINETUNE_STEPS TRAIN_FLAGS
if stage train; then
  runs | xargs -P "$JOBS" -L 1 bash -c 'train_one "$@"' _
fi

extend_one() {  # mixture: the pretrained seed-0 run, on to EXTEND_STEPS
  local dir="$OUT/$1_pt_s0"
  [[ -d "$dir/checkpoints/$EXTEND_STEPS" ]] && return 0
  log "extending $dir to step $EXTEND_STEPS"
  # shellcheck disable=SC2086
  python -m train.main --gin_file=gin/experiments/study2_finetune.gin \
    $TRAIN_FLAGS --gin.MIXTURE_OR_TASK_NAME="'$(task_of "$1")'" \
    --gin.INITIAL_CHECKPOINT_PATH="'$OUT/pretrain'" --gin.MODEL_DIR="'$dir'" \
    --gin.RANDOM_SEED=0 --gin.DATA_SEED=0 --gin.TRAIN_STEPS="$EXTEND_STEPS" \
    --gin.EVAL_PERIOD="$EXTEND_STEPS" > "$dir.extend.out" 2>&1
  log "extended $dir"
}
export -f extend_one
export EXTEND_STEPS
if stage extend; then
  { echo "extend_one redial_only"; echo "extend_one redial_sequences"
    echo "train_one sequences_only pt 0"; } |
    xargs -P "$JOBS" -L 1 bash -c '"$@"' _
fi

eval_one() {  # mixture start seed step examples rank
  local dir="$OUT/$1_$2_s$3" ranking=()
  [[ -f "$dir/eval/$4/metrics.json" ]] && return 0
  if [[ "$6" != 0 ]]; then
    ranking=(--gin.MOVIE_LIST="'$SHARED/redial/movies_with_mentions.csv'"
             --gin.RANKING_EXAMPLES="$6")
  fi
  log "evaluating $dir at step $4"
  python -m eval.main --gin_file=gin/runs/eval.gin \
    --gin.CHECKPOINT_PATH="'$dir/checkpoints/$4'" \
    --gin.MIXTURE_OR_TASK_NAME="'crs_redial_v002'" \
    --gin.NUM_EXAMPLES="$5" \
    --gin.input_pipeline.DatasetConfig.batch_size=32 \
    --gin.TASK_FEATURE_LENGTHS="$EVAL_LENGTHS" \
    --gin.PROBE_DIR="'$OUT/probes'" "${ranking[@]}" > "$dir.eval$4.out" 2>&1
}
export -f eval_one
export SHARED EVAL_LENGTHS
if stage eval; then
  {
    runs | while read -r m start seed; do
      rank=0; [[ "$seed" == 0 ]] && rank=$RANK_EXAMPLES
      echo "$m $start $seed $FINETUNE_STEPS $EVAL_EXAMPLES $rank"
    done
    for m in $PILOT; do for start in pt scratch; do for step in $CURVE_STEPS; do
      echo "$m $start 0 $step $CURVE_EXAMPLES 0"
    done; done; done
    if stage extend; then
      for m in $PILOT; do for step in $EXTEND_CURVE_STEPS; do
        echo "$m pt 0 $step $CURVE_EXAMPLES 0"
      done; done
      echo "sequences_only pt 0 $FINETUNE_STEPS $CURVE_EXAMPLES 0"
      for step in $CURVE_STEPS; do
        echo "sequences_only pt 0 $step $CURVE_EXAMPLES 0"
      done
    fi
  } | xargs -P "$JOBS" -L 1 bash -c 'eval_one "$@"' _
fi

if stage rank; then
  for seed in $SEEDS; do for m in $MIXTURES; do
    dir="$OUT/${m}_pt_s${seed}"
    rank_dir="$dir/eval_rank/$FINETUNE_STEPS"
    [[ -f "$rank_dir/metrics.json" ]] && continue
    log "ranking $dir at step $FINETUNE_STEPS"
    python -m eval.main --gin_file=gin/runs/eval.gin \
      --gin.CHECKPOINT_PATH="'$dir/checkpoints/$FINETUNE_STEPS'" \
      --gin.MIXTURE_OR_TASK_NAME="'crs_redial_v002'" \
      --gin.NUM_EXAMPLES="$RANK_STUDY_EXAMPLES" \
      --gin.RANKING_EXAMPLES="$RANK_STUDY_EXAMPLES" \
      --gin.input_pipeline.DatasetConfig.batch_size=16 \
      --gin.TASK_FEATURE_LENGTHS="$EVAL_LENGTHS" \
      --gin.MOVIE_LIST="'$SHARED/redial/movies_with_mentions.csv'" \
      --gin.EVAL_OUTPUT_DIR="'$dir/eval_rank'" > "$dir.rank.out" 2>&1
  done; done
  log "ranking baselines and table"
  python scripts/study2_ranking.py --out="$OUT" --shared="$SHARED" \
    --examples="$RANK_STUDY_EXAMPLES" --step="$FINETUNE_STEPS" \
    --seeds="${SEEDS// /,}" --output_dir="$OUT/report_ranking"
fi

if stage report; then
  dirs=() labels=()
  while read -r m start seed; do
    dirs+=("$OUT/${m}_${start}_s${seed}") labels+=("${m}_${start}")
  done < <(runs; [[ -d "$OUT/sequences_only_pt_s0" ]] && echo "sequences_only pt 0")
  log "writing the report"
  python -m eval.report --model_dirs="$(IFS=,; echo "${dirs[*]}")" \
    --labels="$(IFS=,; echo "${labels[*]}")" --baseline=redial_only_pt \
    --step="$FINETUNE_STEPS" \
    --probe_dir="$OUT/probes" --output_dir="$OUT/report"
  # The pilot: each seed-0 run against the from-scratch sequences run.
  pilot=() pilot_labels=()
  for m in $PILOT; do for start in scratch pt; do
    pilot+=("$OUT/${m}_${start}_s0") pilot_labels+=("${m}_${start}")
  done; done
  python -m eval.report --model_dirs="$(IFS=,; echo "${pilot[*]}")" \
    --labels="$(IFS=,; echo "${pilot_labels[*]}")" \
    --baseline=redial_sequences_scratch --step="$FINETUNE_STEPS" \
    --probe_dir="$OUT/probes" --output_dir="$OUT/report_pilot"
  if [[ -d "$OUT/redial_only_pt_s0/checkpoints/$EXTEND_STEPS" ]]; then
    python -m eval.report --step="$EXTEND_STEPS" \
      --model_dirs="$OUT/redial_only_pt_s0,$OUT/redial_sequences_pt_s0" \
      --labels=redial_only_pt,redial_sequences_pt --baseline=redial_only_pt \
      --probe_dir="$OUT/probes" --output_dir="$OUT/report_$EXTEND_STEPS"
  fi
  log "done: $OUT/report/report.md (pilot: $OUT/report_pilot)"
fi
