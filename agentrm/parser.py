"""Parse one model turn into a tool call or a final answer.

The format (one layout for inference, SFT data and GRPO):

    <think>reasoning</think>
    <tool_call>{"name": "select_frames", "arguments": {"video": 1, "frames": [10, 20]}}</tool_call>
or
    <think>reasoning</think>
    <answer>{"VQ": "1", "MQ": "tie", "TA": "2", "OA": "1"}</answer><Reward><Reward>

Pairwise answers end with one reward token per video (video 1's first); pointwise with one. Whitespace, a trailing
end-of-turn token and a ```json fence inside a tag are tolerated; nothing else is guessed. Each broken rule raises a
`ParseError` with a named `kind` whose message tells the model the fix; the loop shows it as a tool error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from agentrm.config import EpisodeConfig
from agentrm.errors import ParseError

_TOOL_RE = re.compile(r"<tool_call>(.*?)</tool_call>", re.S)
_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.S)
_THINK_RE = re.compile(r"<think>(.*?)</think>", re.S)
_FENCE_RE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)
_END_TOKENS = ("<|im_end|>", "<|endoftext|>")

PARSE_ERROR_KINDS = (
    "no_action",
    "malformed_json",
    "unknown_tool",
    "multiple_tool_calls",
    "answer_and_tool_call",
    "multiple_answers",
    "missing_reward_token",
    "extra_reward_token",
    "bad_answer",
)


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]
    think: str


@dataclass
class Answer:
    verdicts: dict[str, str | float]
    think: str


def _strip_end(text: str) -> str:
    text = text.strip()
    changed = True
    while changed:
        changed = False
        for tok in _END_TOKENS:
            if text.endswith(tok):
                text = text[: -len(tok)].rstrip()
                changed = True
    return text


def _load_json(raw: str, what: str) -> Any:
    raw = raw.strip()
    fence = _FENCE_RE.match(raw)
    if fence:
        raw = fence.group(1)
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ParseError("malformed_json", f"the {what} is not valid JSON ({exc.msg} at char {exc.pos})") from None


def _parse_tool_call(body: str, tool_names: list[str], think: str) -> ToolCall:
    obj = _load_json(body, "tool call")
    if not isinstance(obj, dict) or "name" not in obj:
        raise ParseError(
            "malformed_json", 'a tool call must be {"name": <tool>, "arguments": {...}} inside <tool_call></tool_call>'
        )
    name = obj["name"]
    if name not in tool_names:
        raise ParseError("unknown_tool", f"unknown tool {name!r}; the tools are: {', '.join(tool_names)}")
    args = obj.get("arguments", {})
    if isinstance(args, str):  # some Qwen checkpoints emit arguments as a JSON string
        args = _load_json(args, "tool call arguments")
    if not isinstance(args, dict):
        raise ParseError("malformed_json", "tool call arguments must be a JSON object")
    extra = set(obj) - {"name", "arguments"}
    if extra:
        raise ParseError("malformed_json", f"unexpected keys {sorted(extra)} in the tool call; use name and arguments")
    return ToolCall(name=name, arguments=args, think=think)


def _verdict(dim: str, value: Any, cfg: EpisodeConfig) -> str | float:
    if cfg.mode == "pairwise":
        v = str(value).strip().lower() if isinstance(value, str | int) and not isinstance(value, bool) else None
        if v not in ("1", "2", "tie"):
            raise ParseError("bad_answer", f'{dim}: {value!r} is not a verdict; use "1", "2" or "tie"')
        return v
    lo, hi = cfg.score_range
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ParseError("bad_answer", f"{dim}: {value!r} is not a score; use a number from {lo} to {hi}")
    return float(value)


def _parse_answer(body: str, tail: str, cfg: EpisodeConfig, think: str) -> Answer:
    obj = _load_json(body, "answer")
    if not isinstance(obj, dict):
        raise ParseError("bad_answer", f"the answer must be a JSON object with keys {cfg.dims}")
    missing = [d for d in cfg.dims if d not in obj]
    extra = [k for k in obj if k not in cfg.dims]
    if missing or extra:
        raise ParseError("bad_answer", f"the answer must have exactly the keys {cfg.dims} (missing {missing}, "
                         f"unexpected {extra})")
    verdicts = {d: _verdict(d, obj[d], cfg) for d in cfg.dims}
    want = cfg.num_videos
    tok = cfg.reward_token
    n = tail.count(tok)
    who = "one per video, video 1 first" if want == 2 else "one"
    if n < want:
        raise ParseError("missing_reward_token", f"end the answer with {want} {tok} token(s) ({who}) after </answer>")
    if n > want or tail.replace(tok, "").strip():
        raise ParseError(
            "extra_reward_token", f"after </answer> write exactly {tok * want} and nothing else ({who})"
        )
    return Answer(verdicts=verdicts, think=think)


def parse_turn(text: str, cfg: EpisodeConfig, tool_names: list[str]) -> ToolCall | Answer:
    """Parse a model turn. Raises ParseError(kind, message) on any format violation."""
    text = _strip_end(text)
    think_m = _THINK_RE.search(text)
    think = think_m.group(1).strip() if think_m else ""
    calls = _TOOL_RE.findall(text)
    answers = list(_ANSWER_RE.finditer(text))
    if calls and answers:
        raise ParseError("answer_and_tool_call", "a turn either calls one tool or answers; not both")
    if len(calls) > 1:
        raise ParseError("multiple_tool_calls", f"{len(calls)} tool calls in one turn; make exactly one per turn")
    if len(answers) > 1:
        raise ParseError("multiple_answers", "write exactly one <answer>...</answer>")
    if calls:
        if cfg.reward_token in text:
            raise ParseError("extra_reward_token", f"{cfg.reward_token} belongs only after the final </answer>")
        return _parse_tool_call(calls[0], tool_names, think)
    if answers:
        m = answers[0]
        if cfg.reward_token in text[: m.start()]:
            raise ParseError("extra_reward_token", f"{cfg.reward_token} belongs only after the final </answer>")
        return _parse_answer(m.group(1), text[m.end():], cfg, think)
    if not tool_names:
        raise ParseError("no_action", "answer with <answer>{...}</answer> followed by the reward token(s)")
    raise ParseError(
        "no_action", "call a tool with <tool_call>{...}</tool_call> or answer with <answer>{...}</answer>"
    )
