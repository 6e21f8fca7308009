#!/usr/bin/env bash
# Landmarks with CheXmask-U uncertainty for a CheXmask-sized collection (~657 k images) as a
# Slurm array: each task runs `infer` on its stable 1/N of the images (shard = hash of the
# file name mod N), then one dependent job merges and checks the shard summaries.
#
#   sbatch --export=ALL,IMAGES=/data/cxr,OUT=/scratch/cxr-out docs/slurm/infer_array.sh
#
# Throughput per task is printed on stderr (images/s, ETA); a task that dies is simply
# resubmitted (`sbatch --array=17 ...`): `infer` skips the images its shard already wrote.
# Sizing: one GPU task does a 1024² image with N = 50 samples in well under a second, so
# 64 shards of ~10 k images each finish in a few hours; on CPUs, raise the shard count.
#SBATCH --job-name=cxr-infer
#SBATCH --array=0-63
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=16G
#SBATCH --time=12:00:00
#SBATCH --output=logs/cxr-infer-%A_%a.log
set -euo pipefail

: "${IMAGES:?set IMAGES to the folder of images}"
: "${OUT:?set OUT to the output folder (shared by all tasks)}"
SHARDS=${SHARDS:-64}          # must match --array=0-(SHARDS-1)
SAMPLES=${SAMPLES:-50}
BIN=${CXR_REVIEW:-cxr-review}

mkdir -p "$OUT" logs
"$BIN" infer "$IMAGES" --out "$OUT" --samples "$SAMPLES" --seed 0 --device auto \
    --shard "${SLURM_ARRAY_TASK_ID}/${SHARDS}"

# The last task to start submits the merge, to run once every task of the array is done.
if [ "${SLURM_ARRAY_TASK_ID}" = "$((SHARDS - 1))" ]; then
    sbatch --dependency=afterok:"${SLURM_ARRAY_JOB_ID}" --job-name=cxr-merge \
        --output=logs/cxr-merge-%j.log --time=01:00:00 --mem=8G \
        --wrap="$BIN merge '$OUT' --inputs '$IMAGES' --out '$OUT/summary.csv'"
fi
