"""Pixel budgets: Qwen-VL's `smart_resize` and the visual-token cost of a frame.

A Qwen-VL vision tower cuts an image into patch x patch squares and merges merge x merge of them into one
token, so each side must be a multiple of factor = patch * merge (28 for Qwen2.5-VL: 14*2; 32 for Qwen3-VL:
16*2). Frames are resized to such a size right after decoding, so the cache and the model never hold
full-resolution frames.
"""

from __future__ import annotations

import math

import numpy as np

QWEN25_FACTOR = 28  # Qwen2.5-VL: patch 14 x spatial merge 2
QWEN3_FACTOR = 32  # Qwen3-VL: patch 16 x spatial merge 2
MAX_ASPECT = 200  # Qwen's processors refuse more extreme aspect ratios; so do we


def smart_resize(
    height: int,
    width: int,
    factor: int = QWEN25_FACTOR,
    max_pixels: int = 336 * 336,
    min_pixels: int | None = None,
) -> tuple[int, int]:
    """Qwen-style target (h, w): aspect kept, each side a multiple of `factor` and at least `factor`,
    h * w <= max_pixels (and >= min_pixels when given and possible).

    Same arithmetic as qwen-vl-utils (round to the factor, then scale down with floor / up with ceil), plus
    one fix: where a side is clamped to `factor` (extreme aspect ratios) the other side is shrunk so h * w <=
    max_pixels still holds.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    if factor <= 0:
        raise ValueError(f"factor must be positive, got {factor}")
    if max_pixels < factor * factor:
        raise ValueError(f"max_pixels={max_pixels} is below one {factor}x{factor} block; use at least {factor**2}")
    if min_pixels is not None and min_pixels > max_pixels:
        raise ValueError(f"min_pixels={min_pixels} is above max_pixels={max_pixels}")
    if max(height, width) / min(height, width) > MAX_ASPECT:
        raise ValueError(f"aspect ratio of {height}x{width} is above {MAX_ASPECT}")
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif min_pixels is not None and h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    if h * w > max_pixels:  # a side was clamped to `factor`, or min_pixels' ceil overshot: shrink the longer side
        if h >= w:
            h = max(factor, max_pixels // w // factor * factor)
        else:
            w = max(factor, max_pixels // h // factor * factor)
    return h, w


def visual_tokens(height: int, width: int, factor: int = QWEN25_FACTOR) -> int:
    """Visual tokens an (height, width) image costs after the spatial merge: one per factor x factor block."""
    return (height // factor) * (width // factor)


def target_size(height: int, width: int, max_pixels: int | None, factor: int = QWEN25_FACTOR) -> tuple[int, int]:
    """The (h, w) frames of a height x width video are returned at: native when max_pixels is None."""
    if max_pixels is None:
        return height, width
    return smart_resize(height, width, factor, max_pixels)


def resize_rgb(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W, 3) uint8 array to size=(h, w): area averaging when shrinking (no aliasing on the fine
    detail the judge is asked about), bicubic when enlarging."""
    import cv2  # lazy: cv2 is only needed by backends that do not resize while converting

    h, w = size
    if pixels.shape[:2] == (h, w):
        return np.ascontiguousarray(pixels)
    shrink = h * w < pixels.shape[0] * pixels.shape[1]
    out = cv2.resize(pixels, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    return np.asarray(out, dtype=np.uint8)
