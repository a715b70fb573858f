"""The output parser: tolerated noise, and each named violation."""

from __future__ import annotations

import pytest

from agentrm.config import EpisodeConfig
from agentrm.errors import ParseError
from agentrm.parser import PARSE_ERROR_KINDS, Answer, ToolCall, parse_turn

TOOLS = ["select_frames", "select_range"]
PAIR = EpisodeConfig()
POINT = EpisodeConfig(mode="pointwise")
V = '{"VQ": "1", "MQ": 2, "TA": "TIE", "OA": "1"}'


def test_tool_call_with_whitespace_fence_and_end_token() -> None:
    text = (
        '  <think> where is the glitch? </think>\n<tool_call>\n```json\n{"name": "select_frames", '
        '"arguments": {"video": 1, "frames": [3]}}\n```\n</tool_call>\n<|im_end|>'
    )
    out = parse_turn(text, PAIR, TOOLS)
    assert isinstance(out, ToolCall)
    assert (out.name, out.arguments, out.think) == (
        "select_frames",
        {"video": 1, "frames": [3]},
        "where is the glitch?",
    )


def test_arguments_as_json_string_are_accepted() -> None:
    text = '<tool_call>{"name": "select_range", "arguments": "{\\"video\\": 2}"}</tool_call>'
    out = parse_turn(text, PAIR, TOOLS)
    assert isinstance(out, ToolCall) and out.arguments == {"video": 2}


def test_pairwise_answer_normalises_verdicts() -> None:
    out = parse_turn(f"<think>ok</think><answer>{V}</answer>\n<Reward><Reward>\n", PAIR, TOOLS)
    assert isinstance(out, Answer)
    assert out.verdicts == {"VQ": "1", "MQ": "2", "TA": "tie", "OA": "1"}


def test_pointwise_answer() -> None:
    out = parse_turn('<answer>{"VQ": 1, "MQ": 5, "TA": 3.5, "OA": 2}</answer><Reward>', POINT, TOOLS)
    assert isinstance(out, Answer) and out.verdicts["TA"] == 3.5


@pytest.mark.parametrize(
    ("text", "cfg", "kind", "fix"),
    [
        ("nothing here", PAIR, "no_action", "call a tool"),
        (
            '<tool_call>{"name": "select_frames", "arguments": {"video": 1,}}</tool_call>',
            PAIR,
            "malformed_json",
            "not valid JSON",
        ),
        ('<tool_call>["select_frames"]</tool_call>', PAIR, "malformed_json", '{"name": <tool>'),
        ('<tool_call>{"name": "select_frames", "arguments": [1]}</tool_call>', PAIR, "malformed_json", "JSON object"),
        (
            '<tool_call>{"name": "select_frames", "arguments": {}, "id": 3}</tool_call>',
            PAIR,
            "malformed_json",
            "unexpected keys",
        ),
        (
            '<tool_call>{"name": "crop", "arguments": {}}</tool_call>',
            PAIR,
            "unknown_tool",
            "select_frames, select_range",
        ),
        (
            '<tool_call>{"name": "select_frames"}</tool_call><tool_call>{"name": "select_frames"}</tool_call>',
            PAIR,
            "multiple_tool_calls",
            "exactly one per turn",
        ),
        (
            f'<tool_call>{{"name": "select_frames"}}</tool_call><answer>{V}</answer><Reward><Reward>',
            PAIR,
            "answer_and_tool_call",
            "not both",
        ),
        (f"<answer>{V}</answer><answer>{V}</answer><Reward><Reward>", PAIR, "multiple_answers", "exactly one"),
        (f"<answer>{V}</answer><Reward>", PAIR, "missing_reward_token", "2 <Reward> token(s)"),
        (f"<answer>{V}</answer>", PAIR, "missing_reward_token", "after </answer>"),
        (f"<answer>{V}</answer><Reward><Reward><Reward>", PAIR, "extra_reward_token", "exactly <Reward><Reward>"),
        (f"<answer>{V}</answer><Reward> extra words <Reward>", PAIR, "extra_reward_token", "nothing else"),
        (f"<Reward><answer>{V}</answer><Reward><Reward>", PAIR, "extra_reward_token", "only after"),
        ('<tool_call>{"name": "select_frames"}</tool_call><Reward>', PAIR, "extra_reward_token", "only after"),
        ('<answer>{"VQ": "1"}</answer><Reward><Reward>', PAIR, "bad_answer", "missing ['MQ', 'TA', 'OA']"),
        (
            '<answer>{"VQ": "1", "MQ": "1", "TA": "1", "OA": "1", "XX": 1}</answer><Reward><Reward>',
            PAIR,
            "bad_answer",
            "unexpected ['XX']",
        ),
        (
            '<answer>{"VQ": "3", "MQ": "1", "TA": "1", "OA": "1"}</answer><Reward><Reward>',
            PAIR,
            "bad_answer",
            '"1", "2" or "tie"',
        ),
        (
            '<answer>{"VQ": true, "MQ": "1", "TA": "1", "OA": "1"}</answer><Reward><Reward>',
            PAIR,
            "bad_answer",
            "not a verdict",
        ),
        ('<answer>{"VQ": 9, "MQ": 1, "TA": 1, "OA": 1}</answer><Reward>', POINT, "bad_answer", "from 1 to 5"),
        ('<answer>{"VQ": "4", "MQ": 1, "TA": 1, "OA": 1}</answer><Reward>', POINT, "bad_answer", "not a score"),
        ("<answer>[1, 2]</answer><Reward><Reward>", PAIR, "bad_answer", "JSON object"),
    ],
)
def test_named_violations(text: str, cfg: EpisodeConfig, kind: str, fix: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_turn(text, cfg, TOOLS)
    assert info.value.kind == kind and kind in PARSE_ERROR_KINDS
    assert fix in str(info.value)


def test_no_tools_means_answer_only() -> None:
    with pytest.raises(ParseError, match="answer with <answer>") as info:
        parse_turn("hmm", PAIR, [])
    assert info.value.kind == "no_action"
