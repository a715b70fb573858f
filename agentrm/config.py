"""Configuration: pydantic v2 models (the one place a field is documented) and a YAML loader with overrides.

Every model forbids unknown keys, so a typo fails at load time with a message naming the key, the file and the
allowed keys, instead of being silently ignored deep inside a run (TRL-style "set X or Y" errors).

    cfg = load_config(ScoreConfig, "configs/score.yaml", ["episode.window.max_visual_tokens=2048"])
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agentrm.errors import ConfigError

DEFAULT_DIMS = ["VQ", "MQ", "TA", "OA"]


class StrictModel(BaseModel):
    """Base for every config and record: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class VideoConfig(StrictModel):
    backend: Literal["pyav", "decord", "opencv"] = Field(
        "pyav", description="Decoder. pyav is exact on every codec tested; decord/opencv are optional fallbacks."
    )
    cache_bytes: int = Field(256 * 2**20, ge=0, description="Byte cap of the LRU cache of resized frames.")
    max_open_decoders: int = Field(4, ge=1, description="How many videos stay open at once (LRU of decoders).")
    decode_timeout_s: float = Field(60.0, gt=0, description="A decode call longer than this fails the sample.")
    index_cache_dir: str | None = Field(
        None, description="Where packet indexes are cached; default $AGENTRM_CACHE or ~/.cache/agentrm/index."
    )


class DetailConfig(StrictModel):
    """Pixel budgets per detail level. A frame is resized to at most `max_pixels` (rounded to the model's
    patch*merge factor), so its visual-token cost is (h/factor)*(w/factor)."""

    levels: dict[str, int] = Field(
        default_factory=lambda: {"low": 112 * 112, "high": 336 * 336},
        description="Detail level name -> max pixels per frame.",
    )
    overview: str = Field("low", description="Detail level of the pinned overview frames.")
    tool_default: str = Field("high", description="Detail level of tool frames when the call names none.")

    @model_validator(mode="after")
    def _known_levels(self) -> DetailConfig:
        for name in (self.overview, self.tool_default):
            if name not in self.levels:
                raise ValueError(f"detail level {name!r} is not one of levels {sorted(self.levels)}")
        return self


class OverviewConfig(StrictModel):
    frames_per_video: int = Field(4, ge=1, le=64, description="Uniformly spaced frames per video, pinned.")


class WindowConfig(StrictModel):
    """Bounded visual memory: the pinned overview plus the most recent tool frame groups that fit."""

    max_visual_tokens: int | None = Field(
        2048, ge=1, description="Cap on visual tokens in context (pinned overview included). None = no cap."
    )
    max_frames: int | None = Field(
        24, ge=1, description="Cap on frames with pixels in context (pinned overview included). None = no cap."
    )

    @model_validator(mode="after")
    def _some_budget(self) -> WindowConfig:
        if self.max_visual_tokens is None and self.max_frames is None:
            raise ValueError("set window.max_visual_tokens or window.max_frames (an unbounded window is not allowed)")
        return self


class LimitsConfig(StrictModel):
    max_turns: int = Field(6, ge=1, description="Model turns per episode, the final answer included.")
    max_frames_per_call: int = Field(8, ge=1, description="Frames one tool call may return.")
    max_total_frames: int = Field(48, ge=1, description="Frames all tool calls of an episode may return.")
    max_new_tokens: int = Field(512, ge=1, description="Generated tokens per turn.")
    max_context_tokens: int = Field(16384, ge=256, description="Prompt tokens (text + visual) per turn.")


class EpisodeConfig(StrictModel):
    mode: Literal["pairwise", "pointwise"] = "pairwise"
    dims: list[str] = Field(default_factory=lambda: list(DEFAULT_DIMS), description="Judged dimensions.")
    overall_dim: str = Field("OA", description="The dimension that is the overall verdict (must be in dims).")
    score_range: tuple[int, int] = Field((1, 5), description="Pointwise verdict range, inclusive.")
    reward_token: str = Field("<Reward>", description="Special token whose hidden state the head reads.")
    overview: OverviewConfig = Field(default_factory=OverviewConfig)
    detail: DetailConfig = Field(default_factory=DetailConfig)
    window: WindowConfig = Field(default_factory=WindowConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    video: VideoConfig = Field(default_factory=VideoConfig)
    tools: list[str] = Field(
        default_factory=lambda: ["select_frames", "select_range"], description="Tool names from agentrm.tools."
    )
    prompt_dir: str | None = Field(
        None, description="Directory of Jinja2 templates replacing the packaged ones by name (prompts/*.j2)."
    )

    @model_validator(mode="after")
    def _dims(self) -> EpisodeConfig:
        if not self.dims:
            raise ValueError("dims must name at least one dimension, e.g. [VQ, MQ, TA, OA]")
        if len(set(self.dims)) != len(self.dims):
            raise ValueError(f"dims has duplicates: {self.dims}")
        if self.overall_dim not in self.dims:
            raise ValueError(f"overall_dim {self.overall_dim!r} must be one of dims {self.dims}")
        lo, hi = self.score_range
        if lo >= hi:
            raise ValueError(f"score_range {self.score_range} must be (low, high) with low < high")
        return self

    @property
    def num_videos(self) -> int:
        return 2 if self.mode == "pairwise" else 1


class SamplingConfig(StrictModel):
    temperature: float = Field(0.0, ge=0, description="0 = greedy.")
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int | None = Field(0, description="Seed for sampled decoding (per episode it is offset by sample id).")


class EngineConfig(StrictModel):
    kind: Literal["hf", "vllm", "scripted"] = "hf"
    model: str = Field("", description="Hub id or local dir (agentrm checkpoint or plain Qwen-VL model).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N.")
    attn_implementation: str = Field("sdpa", description="Passed to from_pretrained.")
    max_batch_size: int = Field(8, ge=1, description="HF engine: requests batched into one forward pass.")
    batch_wait_ms: float = Field(5.0, ge=0, description="HF engine: how long to gather a batch.")
    script: str | None = Field(None, description="Scripted engine: JSONL of model turns to replay.")
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)


class ScoreConfig(StrictModel):
    episode: EpisodeConfig = Field(default_factory=EpisodeConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    concurrency: int = Field(8, ge=1, description="Episodes in flight at once against the engine.")
    policy: Literal["agentic", "uniform"] = Field(
        "agentic", description="uniform = one turn with N uniform frames at the window's token budget (baseline)."
    )


C = TypeVar("C", bound=BaseModel)


def _set_dotted(data: dict[str, Any], dotted: str, value: Any, source: str) -> None:
    keys = dotted.split(".")
    node = data
    for k in keys[:-1]:
        child = node.setdefault(k, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{source}: override {dotted!r}: {k!r} is a value, not a section")
        node = child
    node[keys[-1]] = value


def parse_overrides(overrides: list[str]) -> list[tuple[str, Any]]:
    """`a.b=value` strings -> (key, typed value); values are parsed as YAML (so 3, 0.5, true, [1,2] work)."""
    out = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.path=value, e.g. episode.limits.max_turns=4")
        key, raw = item.split("=", 1)
        out.append((key.strip(), yaml.safe_load(raw) if raw.strip() else ""))
    return out


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names valid at `loc` (walking nested models), for the 'allowed keys' part of an error."""
    current: Any = model
    for part in loc[:-1]:
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        current = fields[part].annotation
    fields = getattr(current, "model_fields", None)
    return sorted(fields) if fields else []


def format_validation_error(model: type[BaseModel], err: ValidationError, source: str) -> str:
    lines = [f"invalid config in {source}:"]
    for e in err.errors():
        loc = tuple(e["loc"])
        key = ".".join(str(p) for p in loc) or "<root>"
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, loc)
            hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            did = f" (did you mean {hint[0]!r}?)" if hint else ""
            lines.append(f"  - unknown key {key!r}{did}; allowed keys here: {', '.join(allowed)}")
        else:
            lines.append(f"  - {key}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def load_config(model: type[C], path: str | Path | None = None, overrides: list[str] | None = None) -> C:
    """Load `model` from a YAML file (or defaults when path is None) and apply `a.b=value` overrides."""
    source = str(path) if path else "<defaults>"
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.exists():
            packaged = resources.files("agentrm.configs").joinpath(str(path))
            if not packaged.is_file():
                raise ConfigError(f"config file {path} not found (neither a path nor a packaged config)")
            text = packaged.read_text()
        else:
            text = p.read_text()
        try:
            loaded = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source}: the top level must be a mapping of keys, got {type(loaded).__name__}")
        data = loaded
    for key, value in parse_overrides(overrides or []):
        _set_dotted(data, key, value, source + " (overrides)")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        src = source + (" with overrides " + " ".join(overrides) if overrides else "")
        raise ConfigError(format_validation_error(model, err, src)) from None
