"""A scripted engine that replays model turns (like inspect_ai's mockllm): for tests of exact loop logic, for
debugging prompts, and for users replaying a trace's model turns with other settings.

Script file (JSONL), one model turn per line, in order per sample:

    {"sample_id": "pair-001", "text": "<think>...</think><tool_call>{...}</tool_call>"}
    {"sample_id": "pair-001", "text": "<answer>{...}</answer><Reward><Reward>", "rewards": [[0.9, ...], [0.1, ...]]}

A traces JSONL from an earlier run works as a script too (its model turns and raw rewards are replayed).
Lines without `sample_id` form the default script used for samples that have none. Turn t of an episode gets the
sample's t-th line, so replay is deterministic under any concurrency. `rewards` (one list of per-dimension values
per reward token) is what `score` returns for that turn; without it `score` returns None (no head).

`max_new_tokens` counts whitespace-separated words. Token counts are an approximation (characters / 4 +
visual tokens) since there is no tokenizer; it is enough to
exercise the context-length limit.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agentrm.config import SamplingConfig
from agentrm.engines.base import Completion, Context
from agentrm.errors import DataError, EngineError

DEFAULT = "*"


@dataclass
class ScriptTurn:
    text: str
    rewards: list[list[float]] | None = None


def _turns_of_trace(row: dict[str, object]) -> list[ScriptTurn]:
    """The model turns of a trace; its raw head outputs become the answer turn's rewards."""
    events = row["events"]
    assert isinstance(events, list)
    turns = [ScriptTurn(text=e["text"]) for e in events if e.get("kind") == "model"]
    raw = row.get("raw_rewards")
    if turns and isinstance(raw, list) and raw:
        dims = list(raw[0])
        turns[-1].rewards = [[float(r[d]) for d in dims] for r in raw]
    return turns


class ScriptedEngine:
    name = "scripted"

    def __init__(
        self,
        script: dict[str, list[ScriptTurn]] | None = None,
        responder: Callable[[Context], ScriptTurn] | None = None,
        factor: int = 28,
        model_id: str = "scripted",
    ) -> None:
        if (script is None) == (responder is None):
            raise ValueError("give ScriptedEngine either a script or a responder")
        self.script = script or {}
        self.responder = responder
        self.factor = factor
        self.model_id = model_id
        self.calls = 0
        self._served: dict[tuple[str, int], ScriptTurn] = {}  # (sample, turn) -> the turn generate returned

    @classmethod
    def from_texts(cls, turns: list[str] | dict[str, list[str]], **kw: object) -> ScriptedEngine:
        as_dict = turns if isinstance(turns, dict) else {DEFAULT: turns}
        return cls({k: [ScriptTurn(t) for t in v] for k, v in as_dict.items()}, **kw)  # type: ignore[arg-type]

    @classmethod
    def from_file(cls, path: str | Path, **kw: object) -> ScriptedEngine:
        script: dict[str, list[ScriptTurn]] = defaultdict(list)
        p = Path(path)
        if not p.exists():
            raise DataError(f"script file {p} does not exist")
        for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if "events" in row:  # a trace from an earlier run: replay its model turns
                    script[str(row["id"])] = _turns_of_trace(row)
                    continue
                turn = ScriptTurn(text=row["text"], rewards=row.get("rewards"))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataError(
                    f"{p}:{lineno}: a script line must be JSON with a 'text' field, or a trace ({exc})"
                ) from None
            script[str(row.get("sample_id", DEFAULT))].append(turn)
        return cls(dict(script), **kw)  # type: ignore[arg-type]

    def _turn(self, context: Context) -> ScriptTurn:
        if self.responder is not None:
            return self.responder(context)
        turns = self.script.get(context.sample_id, self.script.get(DEFAULT))
        if turns is None:
            raise EngineError(f"the script has no turns for sample {context.sample_id!r} and no default turns")
        if context.turn > len(turns):
            raise EngineError(
                f"the script for sample {context.sample_id!r} has {len(turns)} turn(s); "
                f"turn {context.turn} was asked for"
            )
        return turns[context.turn - 1]

    async def generate(self, context: Context, sampling: SamplingConfig, max_new_tokens: int) -> Completion:
        self.calls += 1
        turn = self._turn(context)
        self._served[(context.sample_id, context.turn)] = turn
        words = turn.text.split()
        cut = len(words) > max_new_tokens
        return Completion(
            text=" ".join(words[:max_new_tokens]) if cut else turn.text,
            prompt_tokens=self.count_tokens(context),
            completion_tokens=min(len(words), max_new_tokens),
            finish_reason="length" if cut else "stop",
        )

    async def score(self, context: Context, completion: str) -> list[list[float]] | None:
        served = self._served.get((context.sample_id, context.turn))
        return (served or self._turn(context)).rewards

    def count_tokens(self, context: Context) -> int:
        text = sum(len(m.text) for m in context.messages)
        return text // 4 + context.visual_tokens() + 4 * len(context.messages)
