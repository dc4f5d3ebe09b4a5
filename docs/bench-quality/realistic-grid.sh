#!/usr/bin/env bash
# The realistic-world grid of docs/evaluation.md (#19): every invocation is `dreamer bench quality`,
# which keeps finished runs and resumes started ones, so rerunning this script continues the grid.
#   docs/bench-quality/realistic-grid.sh [ROOT]   (default /work/bench-quality/realistic), from the
#   repository root with the venv's python first on PATH (python -m: the checkout's code, not an install)
set -u
ROOT=${1:-/work/bench-quality/realistic}
FRONT="rubber duck,snowman,toy car,penguin"
SIX="$FRONT,mushroom,coffee mug"
bench() { python -m dreamer.cli bench quality --jobs 2 "$@" prior.world=realistic; }
# 1. the targets and the seeds' claims: SDS (recipe, scale 3), VSD, ESD (lambda 0.5), three seeds
bench --methods sds,vsd,esd --objects "$SIX" --seeds 0,1,2 --out "$ROOT/main3"
# 2. saturation at large CFG: SDS at 7.5 and 100, BSD at lambda_r 100
bench --methods sds --objects "$FRONT" --seeds 0,1 --out "$ROOT/sds-cfg7.5" guidance.guidance_scale=7.5
bench --methods sds --objects "$FRONT" --seeds 0,1 --out "$ROOT/sds-cfg100" guidance.guidance_scale=100
bench --methods bsd --objects "$FRONT" --seeds 0,1 --out "$ROOT/bsd-cfg100" guidance.bsd.balance_ratio=100
# 3. the other methods, two seeds
bench --methods bsd,ism,tsm,csd,dsd,cds --objects "$SIX" --seeds 0,1 --out "$ROOT/main2"
# 4. ESD at lambda = 1.0
bench --methods esd --objects "$SIX" --seeds 0,1,2 --out "$ROOT/esd-lambda1" guidance.entropy_weight=1.0
