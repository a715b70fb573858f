"""One real verl FSDP2 train step of AgentrmRewardEngine on CPU (tiny Qwen2.5-VL): the rows come from the agent loop
exactly as verl's V1 worker builds them; the loss is verl's ppo_loss plus the auxiliary BT term. Then verl's
checkpoint save and the export to an agentrm checkpoint. Runs in a child process (engine_step.py): verl's engine
monkey-patches transformers process-wide."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.verl


@pytest.fixture(scope="module")
def step(prepared_dir: Path, items_jsonl: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("grpo-engine")
    script = Path(__file__).with_name("engine_step.py")
    proc = subprocess.run([sys.executable, str(script), str(prepared_dir), str(items_jsonl), str(work)],
                          capture_output=True, text=True, timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"engine step failed:\n{proc.stderr[-4000:]}"
    return dict(json.loads(lines[-1][len("RESULT "):]))


def test_train_step_adds_bt_to_the_policy_loss(step: dict[str, Any]) -> None:
    assert step["is_agentrm_engine"]
    m = step["metrics"]
    assert m["agentrm/bt_pairs"] == [3]  # VQ, MQ, OA (the TA tie is dropped, DeScore-style)
    assert m["agentrm/bt_loss"][0] == pytest.approx(math.log(2), abs=0.02)  # fresh head: ~ln 2
    assert m["agentrm/bt_missing_partner"] == [0]
    assert {"actor/pg_loss", "kl_loss"} <= set(step["metric_keys"]) and math.isfinite(m["grad_norm"])


def test_head_and_trainable_weights_changed(step: dict[str, Any]) -> None:
    changed = set(step["changed"])
    assert "agentrm_head.net.weight" in changed
    assert "model.language_model.embed_tokens.weight" in changed
    assert any("language_model.layers" in n for n in changed)


def test_head_moves_only_through_the_bt_term(step: dict[str, Any]) -> None:
    with_bt, without = step["head_delta_by_coef"]
    assert with_bt > 0 and without == 0.0


def test_forward_only_pass_scores_answer_rows(step: dict[str, Any]) -> None:
    rows = step["score_rows"]
    assert [all(math.isnan(v) for v in r) for r in rows] == [True, True, False]
    assert len(rows[2]) == 8  # 2 videos x 4 dims


def test_export_round_trip(step: dict[str, Any]) -> None:
    assert step["export_head_equal"] and step["export_lm_head_equal"]
    assert step["export_dims"] == ["VQ", "MQ", "TA", "OA"]


def test_pointwise_bt_uses_the_partner_score(step: dict[str, Any]) -> None:
    found, missing = step["pointwise_found"], step["pointwise_missing"]
    assert found["agentrm/bt_pairs"] == [3] and found["agentrm/bt_missing_partner"] == [0]
    assert math.isfinite(found["agentrm/bt_loss"][0]) and found["agentrm/bt_loss"][0] > 0
    # no partner score: the row is counted, not scored, and the loss is not silently replaced
    assert missing["agentrm/bt_pairs"] == [0] and missing["agentrm/bt_missing_partner"] == [1]


def test_head_is_not_synced_to_vllm(step: dict[str, Any]) -> None:
    names = step["synced_names"]
    assert "lm_head.weight" in names and any("embed_tokens" in n for n in names)
    assert not [n for n in names if "agentrm_head" in n]
