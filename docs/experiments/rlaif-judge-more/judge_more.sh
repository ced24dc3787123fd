# Issue 19: the bench's 256 x 6 judge trained 400 more steps (lr 3e-4), then asked about the 3,544 SFT
# programs of runs/bench-rlaif-large/rm-data, and how it orders them (judge-on-policy.json).
# Run from the repository root: bash docs/experiments/rlaif-judge-more/judge_more.sh
set -e
source .venv/bin/activate
export HF_HUB_OFFLINE=1
# (it waited here for the noise runs to finish)
date
# the judge's directory is the one train_and_check_judge returns (judge-relabel-<hash of the
# settings>/ beside the model; other relabelled judges may live there too)
J=$(python -c "
import json, sys
from execrl.demo_rlaif import train_and_check_judge
r = train_and_check_judge('runs/embedded/model', 'runs/judge-more', steps=400, eval_tasks=40, samples=8,
                          start='runs/embedded/judge-256x6-p8', lr=3e-4)
print(json.dumps(r['accuracy']), file=sys.stderr)
print(r['judge'])
" | tail -1)
date
echo "judge dir $J"
mkdir -p runs/judge-more/rm-data
cp runs/bench-rlaif-large/rm-data/samples.jsonl runs/bench-rlaif-large/rm-data/truth.jsonl runs/judge-more/rm-data/
execrl judge --judge-model "$J" --benchmark builtin --data runs/bench-rlaif-large/api-tasks.jsonl \
  --samples runs/judge-more/rm-data/samples.jsonl --out runs/judge-more/rm-data/J.jsonl
date
python docs/experiments/bench-rlaif/judge_on_policy.py runs/judge-more/rm-data > runs/judge-more/judge-on-policy.json
date
echo DONE
