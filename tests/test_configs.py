"""Configs: every packaged YAML validates; errors name the key, the file and the allowed values."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from agentrm.config import EpisodeConfig, ScoreConfig, load_config
from agentrm.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_packaged_score_configs_validate() -> None:
    names = [p.name for p in resources.files("agentrm.configs").iterdir() if p.name.startswith("score")]
    assert {"score.yaml", "score_uniform.yaml"} <= set(names)
    for name in names:
        cfg = load_config(ScoreConfig, name)  # found as package data, from any working directory
        assert cfg.episode.window.max_visual_tokens == 2048
    assert load_config(ScoreConfig, "score.yaml") == ScoreConfig()  # the YAML spells out the defaults


def test_overrides_are_typed() -> None:
    cfg = load_config(ScoreConfig, None, ["episode.limits.max_turns=3", "episode.dims=[VQ, OA]",
                                          "episode.overall_dim=OA", "engine.sampling.temperature=0.7"])
    assert cfg.episode.limits.max_turns == 3 and cfg.episode.dims == ["VQ", "OA"]
    assert cfg.engine.sampling.temperature == 0.7


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["episode.window.max_token=5"], "unknown key 'episode.window.max_token' (did you mean 'max_visual_tokens'?)"),
        (["engine.kind=tgi"], "engine.kind: Input should be 'hf', 'vllm' or 'scripted'"),
        (["episode.limits.max_turns=0"], "episode.limits.max_turns: Input should be greater than or equal to 1"),
        (["episode.overall_dim=XX"], "overall_dim 'XX' must be one of dims"),
        (["episode.detail.overview=ultra"], "detail level 'ultra' is not one of levels ['high', 'low']"),
        (["nonsense"], "must look like key.path=value"),
    ],
)
def test_bad_values_name_key_and_fix(overrides: list[str], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(ScoreConfig, None, overrides)
    assert expected in str(info.value)


def test_unknown_key_in_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("episode:\n  windw: {max_frames: 3}\n")
    with pytest.raises(ConfigError) as info:
        load_config(ScoreConfig, bad)
    msg = str(info.value)
    assert str(bad) in msg and "unknown key 'episode.windw' (did you mean 'window'?)" in msg
    assert "allowed keys here:" in msg and "limits" in msg


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(EpisodeConfig, tmp_path / "nope.yaml")
    (tmp_path / "x.yaml").write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(EpisodeConfig, tmp_path / "x.yaml")
