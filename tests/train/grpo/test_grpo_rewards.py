"""The GRPO rule reward, case by case (verl-free: runs in the default suite)."""

from __future__ import annotations

import math

import pytest

from agentrm.train.rewards import EpisodeSummary, RewardConfig, compute_reward, reward_from_extra_info

LABELS = {"VQ": "1", "MQ": "2", "TA": "tie", "OA": "1"}
DIMS = ["VQ", "MQ", "TA", "OA"]


def summary(**kw: object) -> EpisodeSummary:
    base: dict[str, object] = dict(mode="pairwise", dims=DIMS, overall_dim="OA", labels=LABELS, verdicts=dict(LABELS),
                                   termination="answer", tool_calls_ok=1, tool_calls=1)
    base.update(kw)
    return EpisodeSummary.model_validate(base)


W = RewardConfig()  # dims .4, overall .4, format .1, tool .1 (cap 2, only when correct)
CASES = [
    # (name, summary kwargs, expected score)
    ("all right, one tool call", {}, 0.4 + 0.4 + 0.1 + 0.1 * 0.5),
    ("all right, two calls = cap", {"tool_calls_ok": 2}, 1.0),
    ("all right, ten calls: capped, no more reward", {"tool_calls_ok": 10, "tool_calls": 10}, 1.0),
    ("all right, no tools", {"tool_calls_ok": 0, "tool_calls": 0}, 0.9),
    ("overall wrong: no tool bonus", {"verdicts": {**LABELS, "OA": "2"}, "tool_calls_ok": 2}, 0.4 + 0.1),
    ("one dim wrong", {"verdicts": {**LABELS, "TA": "1"}}, 0.4 * 2 / 3 + 0.4 + 0.1 + 0.05),
    ("tool errors penalised and capped", {"tool_errors": 9}, 0.95 - 0.05 * 3),
    ("parse errors penalised", {"parse_errors": 1}, 0.95 - 0.05),
    ("hit the turn limit, no answer", {"termination": "max_turns", "verdicts": None}, -0.2),
    ("malformed final turn", {"termination": "format", "verdicts": None, "tool_errors": 1}, -0.2 - 0.05),
]


@pytest.mark.parametrize(("name", "kw", "expected"), CASES, ids=[c[0] for c in CASES])
def test_reward_table(name: str, kw: dict[str, object], expected: float) -> None:
    assert compute_reward(summary(**kw), W).score == pytest.approx(expected)


def test_more_calls_never_pay_more_than_the_cap() -> None:
    scores = [compute_reward(summary(tool_calls_ok=n, tool_calls=n), W).score for n in range(0, 12)]
    assert scores == sorted(scores) and max(scores) == scores[W.tool_use_cap]


def test_tool_floor_keeps_a_gradient_for_tool_use_when_wrong() -> None:
    wrong = {"verdicts": {**LABELS, "OA": "2"}}
    cfg = RewardConfig(tool_use_floor=0.5)
    with_tools = compute_reward(summary(**wrong, tool_calls_ok=2), cfg).score
    without = compute_reward(summary(**wrong, tool_calls_ok=0), cfg).score
    assert with_tools - without == pytest.approx(0.1 * 0.5)


def test_video_error_is_invalid_not_a_model_failure() -> None:
    out = compute_reward(summary(termination="video_error", verdicts=None), W)
    assert out.score == 0.0 and out.components["invalid"] == 1.0
    ok = compute_reward(summary(), W)
    assert set(out.components) == set(ok.components)  # verl stacks components across rows by key


def test_pointwise_partial_credit_and_unlabelled_dims() -> None:
    s = summary(mode="pointwise", labels={"OA": 4.0}, verdicts={d: 5.0 for d in DIMS}, score_range=(1, 5))
    out = compute_reward(s, W)
    assert out.components["overall_acc"] == pytest.approx(0.75)
    assert math.isnan(out.components["dims_acc"])  # no labels: left out, not scored 0
    assert out.score == pytest.approx(0.4 * 0.75 + 0.1)


def test_reward_from_extra_info_needs_the_summary() -> None:
    s = summary()
    assert reward_from_extra_info({"agentrm_summary": s.model_dump_json()}, W).score == pytest.approx(0.95)
    with pytest.raises(KeyError, match="agent_name=agentrm"):
        reward_from_extra_info({}, W)
