#!/usr/bin/env bash
# GPU smoke test of `agentrm train grpo` on one real node (NOT run in CI: it needs CUDA GPUs, vLLM and a model).
#
#   pip install -e '.[verl,vllm]'            # verl 0.9.1 pins vllm==0.24.0 / torch==2.11 on GPU nodes
#   MODEL=Qwen/Qwen2.5-VL-3B-Instruct GPUS=1 bash scripts/gpu_smoke_grpo.sh
#
# It writes 4 synthetic labelled pairs (index videos), runs 2 GRPO steps with n=2 rollouts (vLLM rollout through
# agentrm's agent loop, FSDP2 actor with the reward head + BT), then checks: rollout traces were written, the
# reward components and agentrm/bt_* metrics appear in the log, and `agentrm.load` reads the exported checkpoint.
set -euo pipefail
MODEL=${MODEL:-Qwen/Qwen2.5-VL-3B-Instruct}
GPUS=${GPUS:-1}
OUT=${OUT:-/tmp/agentrm_grpo_smoke}
rm -rf "$OUT" && mkdir -p "$OUT/videos"

python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
from agentrm.video.synthetic import write_index_video
out = Path(sys.argv[1])
vids = []
for i in range(4):
    p = out / "videos" / f"v{i}.mp4"
    write_index_video(p, num_frames=48 + 16 * i, fps=8, size=(320, 180), gop=16)
    vids.append(str(p))
rows = [{"id": f"pair-{k}", "mode": "pairwise", "prompt": "a square pattern",
         "videos": [vids[k], vids[(k + 1) % 4]], "labels": {"VQ": "1", "MQ": "2", "TA": "tie", "OA": "1"}}
        for k in range(4)]
(out / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
PY

agentrm train grpo --config configs/grpo/tiny.yaml \
  model.path="$MODEL" model.attn_implementation=flash_attention_2 model.remove_padding=true \
  data.train="$OUT/items.jsonl" output_dir="$OUT/run" cluster.n_gpus_per_node="$GPUS" \
  algo.train_batch_size=2 algo.ppo_mini_batch_size=2 algo.n=2 algo.total_training_steps=2 save_freq=1 \
  2>&1 | tee "$OUT/log.txt"

ls "$OUT"/run/rollouts/step_*/*.jsonl
grep -q "agentrm/bt_loss" "$OUT/log.txt" || { echo "no agentrm/bt_loss metric in the log"; exit 1; }
grep -q "reward/overall_acc/mean" "$OUT/log.txt" || { echo "no reward component metrics in the log"; exit 1; }
python -c "import agentrm, sys; rm = agentrm.load(sys.argv[1], device='cpu'); print('exported head:', rm.head.config)" \
  "$OUT/run/final"
echo "GRPO smoke OK: traces in $OUT/run/rollouts (agentrm view $OUT/run/rollouts/step_000001/*.jsonl)"
