"""The GRPO rule reward: a weighted sum of named components, computed from an episode summary (no verl, no torch).

Why a summary and not the decoded text: verl decodes the response with `skip_special_tokens=True`, so `<Reward>`
vanishes and the tool turns are in other rows; the agent loop already parsed every turn, so it hands the reward the
facts (verdicts, termination, tool calls, errors) in `extra_info` and the reward never re-parses text.

    summary = summarize_trace(trace, episode_cfg)
    breakdown = compute_reward(summary, RewardConfig())
    breakdown.score, breakdown.components        # components are logged as metrics, one key each

Components (each in [0, 1] before weighting; penalties are subtracted):
- `dims`: verdict accuracy over the labelled dimensions other than the overall one (pairwise: exact "1"/"2"/"tie";
  pointwise: 1 - |verdict - label| / range);
- `overall`: the same for the overall dimension;
- `format`: 1 when the episode ended with a well-formed answer;
- `tool_use`: distinct *successful* tool calls, capped at `tool_use_cap`, scaled to [0, 1]; by default paid only
  when the overall verdict is right (FrameThinker). Capping and counting only distinct successful calls avoid
  VR-Thinker's "more calls = more reward"; a small bonus that is not conditional on a floor of calls keeps the
  option of answering from the overview open, while `tool_use_floor` (default 0) can pay a floor for any tool use
  to counter the Pixel-Reasoner collapse of tool calls to zero;
- penalties: `tool_errors` and `parse_errors` per occurrence (capped), `limit` when a limit ended the episode.
An episode that failed for a reason outside the model (video or engine error) scores 0 and is flagged `invalid`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from agentrm.config import EpisodeConfig, StrictModel
from agentrm.trace import ParseErrorEvent, ToolErrorEvent, ToolResultEvent, Trace

LIMIT_TERMINATIONS = ("max_turns", "max_frames", "max_new_tokens", "max_context", "format")
INVALID_TERMINATIONS = ("video_error", "error")


class RewardConfig(StrictModel):
    """Weights of the rule reward; every component is also logged on its own."""

    dims: float = Field(0.4, ge=0, description="Weight of per-dimension verdict accuracy (non-overall dims).")
    overall: float = Field(0.4, ge=0, description="Weight of overall verdict accuracy.")
    format: float = Field(0.1, ge=0, description="Weight of a well-formed final answer.")
    tool_use: float = Field(0.1, ge=0, description="Weight of the capped tool-use bonus.")
    tool_use_cap: int = Field(2, ge=1, description="Distinct successful tool calls counted towards the bonus.")
    tool_use_when: Literal["correct", "always"] = Field(
        "correct", description="correct = bonus only when the overall verdict is right; always = whenever."
    )
    tool_use_floor: float = Field(
        0.0, ge=0, le=1, description="Fraction of the tool bonus paid for any tool use even when not correct."
    )
    tool_error_penalty: float = Field(0.05, ge=0, description="Subtracted per tool error (capped).")
    parse_error_penalty: float = Field(0.05, ge=0, description="Subtracted per malformed turn (capped).")
    error_cap: int = Field(3, ge=0, description="Errors of each kind that are penalised at most.")
    limit_penalty: float = Field(0.2, ge=0, description="Subtracted when a limit (turns, frames, tokens) ended it.")


class EpisodeSummary(StrictModel):
    """What the reward needs from one episode; small and JSON-able (it travels in verl's extra_info)."""

    mode: Literal["pairwise", "pointwise"]
    dims: list[str]
    overall_dim: str
    score_range: tuple[float, float] = (1.0, 5.0)
    labels: dict[str, str | float] = Field(default_factory=dict)
    verdicts: dict[str, str | float] | None = None
    termination: str | None = None
    tool_calls_ok: int = Field(0, description="Distinct tool calls that returned frames.")
    tool_calls: int = Field(0, description="All tool calls, repeats and errors included.")
    tool_errors: int = 0
    repeated_calls: int = 0
    parse_errors: int = 0
    num_turns: int = 0
    frames_viewed: int = 0


class RewardBreakdown(StrictModel):
    score: float
    components: dict[str, float]


def summarize_trace(trace: Trace, cfg: EpisodeConfig) -> EpisodeSummary:
    """The reward-relevant facts of a finished trace."""
    events = trace.events
    results = [e for e in events if isinstance(e, ToolResultEvent)]
    return EpisodeSummary(
        mode=trace.inputs.mode,
        dims=list(cfg.dims),
        overall_dim=cfg.overall_dim,
        score_range=(float(cfg.score_range[0]), float(cfg.score_range[1])),
        labels=dict(trace.inputs.labels),
        verdicts=dict(trace.verdicts) if trace.verdicts is not None else None,
        termination=trace.termination,
        tool_calls_ok=sum(1 for e in results if not e.repeated and e.frames),
        tool_calls=sum(1 for e in events if e.kind == "tool_call"),
        tool_errors=sum(1 for e in events if isinstance(e, ToolErrorEvent)),
        repeated_calls=sum(1 for e in results if e.repeated),
        parse_errors=sum(1 for e in events if isinstance(e, ParseErrorEvent)),
        num_turns=trace.num_turns,
        frames_viewed=trace.frames_viewed,
    )


def verdict_score(mode: str, verdict: str | float, label: str | float, score_range: tuple[float, float]) -> float:
    """1 for a right verdict, 0 for a wrong one; pointwise verdicts get partial credit by distance."""
    if mode == "pairwise":
        return 1.0 if str(verdict) == str(label) else 0.0
    lo, hi = score_range
    return max(0.0, 1.0 - abs(float(verdict) - float(label)) / (hi - lo))


def _accuracy(s: EpisodeSummary, dims: list[str]) -> float | None:
    labelled = [d for d in dims if d in s.labels]
    if not labelled:
        return None  # nothing to grade: the component is left out (weight 0), not scored 0
    if s.verdicts is None:
        return 0.0
    return sum(verdict_score(s.mode, s.verdicts[d], s.labels[d], s.score_range) for d in labelled) / len(labelled)


def compute_reward(s: EpisodeSummary, cfg: RewardConfig) -> RewardBreakdown:
    """The weighted rule reward and its components (see module docstring)."""
    if s.termination in INVALID_TERMINATIONS:  # same keys as below: verl stacks components across rows by key
        nan = float("nan")
        keys = ("dims_acc", "overall_acc", "format", "tool_use", "tool_calls_ok", "tool_errors", "parse_errors",
                "limit_hit", "num_turns")
        return RewardBreakdown(score=0.0, components={**dict.fromkeys(keys, nan), "invalid": 1.0})
    answered = s.termination == "answer" and s.verdicts is not None
    other_dims = [d for d in s.dims if d != s.overall_dim]
    dims_acc = _accuracy(s, other_dims)
    overall_acc = _accuracy(s, [s.overall_dim])
    used = min(s.tool_calls_ok, cfg.tool_use_cap) / cfg.tool_use_cap
    correct = overall_acc is not None and overall_acc >= 1.0
    gate = 1.0 if (cfg.tool_use_when == "always" or correct) else cfg.tool_use_floor
    tool_bonus = used * gate if answered else 0.0
    comp: dict[str, float] = {
        "dims_acc": dims_acc if dims_acc is not None else float("nan"),
        "overall_acc": overall_acc if overall_acc is not None else float("nan"),
        "format": 1.0 if answered else 0.0,
        "tool_use": tool_bonus,
        "tool_calls_ok": float(s.tool_calls_ok),
        "tool_errors": float(s.tool_errors),
        "parse_errors": float(s.parse_errors),
        "limit_hit": 1.0 if s.termination in LIMIT_TERMINATIONS else 0.0,
        "num_turns": float(s.num_turns),
        "invalid": 0.0,
    }
    score = (
        cfg.dims * (dims_acc or 0.0)
        + cfg.overall * (overall_acc or 0.0)
        + cfg.format * comp["format"]
        + cfg.tool_use * tool_bonus
        - cfg.tool_error_penalty * min(s.tool_errors, cfg.error_cap)
        - cfg.parse_error_penalty * min(s.parse_errors, cfg.error_cap)
        - cfg.limit_penalty * comp["limit_hit"]
    )
    return RewardBreakdown(score=float(score), components=comp)


def reward_from_extra_info(extra_info: dict[str, Any], cfg: RewardConfig) -> RewardBreakdown:
    """The reward of a rollout whose agent loop put its `EpisodeSummary` under extra_info["agentrm_summary"]."""
    raw = extra_info.get("agentrm_summary")
    if raw is None:
        raise KeyError(
            "extra_info has no 'agentrm_summary': the rollout was not produced by agentrm's agent loop. Set "
            "agent_name=agentrm in the data (agentrm train grpo --prepare-data does) and register the loop."
        )
    summary = EpisodeSummary.model_validate_json(raw) if isinstance(raw, str) else EpisodeSummary.model_validate(raw)
    return compute_reward(summary, cfg)
