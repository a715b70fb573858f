"""Pixel budgets: Qwen's smart_resize arithmetic (checked against transformers' own) and visual-token costs."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from agentrm.errors import ConfigError
from agentrm.video import QWEN3_FACTOR, QWEN25_FACTOR, open_video, smart_resize, target_size, visual_tokens
from agentrm.video.resize import resize_rgb
from agentrm.video.synthetic import write_index_frames

SIZES = [(72, 128), (360, 640), (480, 854), (720, 1280), (1080, 1920), (1920, 1080), (2160, 3840), (97, 131)]
BUDGETS = [56 * 56, 112 * 112, 224 * 224, 336 * 336, 448 * 448, 1280 * 28 * 28]


@pytest.mark.parametrize("factor", [QWEN25_FACTOR, QWEN3_FACTOR])
def test_budget_factor_and_aspect(factor: int) -> None:
    for (h, w), budget in itertools.product(SIZES, BUDGETS):
        rh, rw = smart_resize(h, w, factor, budget)
        assert rh % factor == 0 and rw % factor == 0 and rh >= factor and rw >= factor
        assert rh * rw <= budget
        assert abs(rh / rw - h / w) / (h / w) < 0.35  # aspect kept up to rounding to the factor
        assert visual_tokens(rh, rw, factor) == (rh // factor) * (rw // factor) <= budget // factor**2


def test_matches_transformers_qwen2_vl_smart_resize() -> None:
    """Same arithmetic as the processor the model is trained with, wherever that one is well defined."""
    reference = pytest.importorskip("transformers.models.qwen2_vl.image_processing_pil_qwen2_vl").smart_resize
    for (h, w), budget, factor in itertools.product(SIZES, BUDGETS, [28, 32]):
        ours = smart_resize(h, w, factor, budget, min_pixels=factor * factor)
        assert ours == reference(h, w, factor, min_pixels=factor * factor, max_pixels=budget), (h, w, budget)


def test_known_values() -> None:
    assert smart_resize(360, 640, 28, 336 * 336) == (252, 448)
    assert smart_resize(360, 640, 32, 336 * 336) == (224, 448)
    assert smart_resize(72, 128, 28, 56 * 56) == (28, 56)
    assert smart_resize(1080, 1920, 28, 10**8) == (1092, 1932)  # under budget: only rounded to the factor
    assert smart_resize(20, 30, 28, 10**6, min_pixels=112 * 112) == (112, 140)  # scaled up to min_pixels
    assert visual_tokens(252, 448, 28) == 9 * 16


def test_extreme_aspect_still_within_budget() -> None:
    """Qwen's formula clamps the short side to `factor` and can then exceed the budget; ours shrinks the long
    side instead."""
    assert smart_resize(10, 1900, 28, 28 * 28 * 4) == (28, 112)
    assert smart_resize(1900, 10, 32, 32 * 32 * 3) == (96, 32)


def test_invalid_budgets_are_errors() -> None:
    with pytest.raises(ValueError, match="at least 784"):
        smart_resize(360, 640, 28, 500)
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(1, 500, 28, 10**6)
    with pytest.raises(ValueError, match="positive"):
        smart_resize(0, 5)


def test_target_size_native_and_resize_rgb() -> None:
    assert target_size(72, 128, None) == (72, 128)
    assert target_size(72, 128, 56 * 56, 28) == (28, 56)
    img = np.zeros((72, 128, 3), np.uint8)
    img[:, 64:] = 255
    small = resize_rgb(img, (28, 56))
    assert small.shape == (28, 56, 3) and small.dtype == np.uint8
    assert small[:, :27].max() == 0 and small[:, 29:].min() == 255
    assert resize_rgb(img, (84, 140)).shape == (84, 140, 3)


def test_bad_budget_in_get_is_a_config_error(tmp_path: Path) -> None:
    write_index_frames(tmp_path / "d", 2, (64, 48))
    with pytest.raises(ConfigError, match="max_pixels=100"):
        open_video(tmp_path / "d").get([0], max_pixels=100)
