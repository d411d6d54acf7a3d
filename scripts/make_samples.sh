#!/usr/bin/env bash
# Regenerates results/samples/: a small real sample of all three tasks on the embedded Gemma 3 270M (CPU),
# mult_gauss on attn_only at sigma 0 (the control), 0.4, 0.8 and 1.2, 5 repetitions, then its summary,
# statistics and figures.
# The embedded model has no vision tower, so cookie_theft_it runs its prompts without the picture.
set -euo pipefail
cd "$(dirname "$0")/.."
common=(--gpus 0 --model embedded --results-dir results/samples --logs-dir logs
        --set degradation_method=mult_gauss --set param_group_name=attn_only
        --set min_deg=0 --set max_deg=1.2 --set deg_steps=4 --set n_rep=5)
python scripts/launch.py --config dreams_it --max-prompts 8 --set max_new_tokens=48 "${common[@]}"
python scripts/launch.py --config iq_it --set max_new_tokens=32 "${common[@]}"
python scripts/launch.py --config cookie_theft_it --max-prompts 6 --set max_new_tokens=48 \
  --set image_enabled=false "${common[@]}"
rm -f results/samples/*.lock
python scripts/summarize.py results/samples/outputs_*.json --out results/samples/summary
