"""The index-block frames: they read back exactly, survive resizing, and never misread a wrong image."""

from __future__ import annotations

import numpy as np
import pytest

from agentrm.video.resize import resize_rgb
from agentrm.video.synthetic import MAX_INDEX, index_image, read_index


@pytest.mark.parametrize("index", [0, 1, 2, 7, 255, 1000, 108_000, MAX_INDEX])
def test_round_trip_and_resize(index: int) -> None:
    rgb = np.repeat(index_image(index, (640, 360))[:, :, None], 3, axis=2)
    assert read_index(rgb) == index
    for size in [(28, 56), (56, 56), (36, 64), (252, 448)]:
        assert read_index(resize_rgb(rgb, size)) == index
    assert read_index(rgb[:, :, 0]) == index  # grey images too


def test_wrong_images_do_not_read_as_an_index() -> None:
    for value in (0, 255):  # all-black / all-white fail the check bits
        with pytest.raises(ValueError, match="check bits"):
            read_index(np.full((72, 128, 3), value, np.uint8))
    with pytest.raises(ValueError, match="grey"):
        read_index(np.full((72, 128, 3), 128, np.uint8))
    blend = (index_image(10, (128, 72)).astype(int) + index_image(11, (128, 72))) // 2  # two frames mixed
    with pytest.raises(ValueError):
        read_index(blend.astype(np.uint8))


def test_neighbouring_indices_differ_visibly() -> None:
    for i in range(0, 3000, 7):
        assert (index_image(i, (64, 48)) != index_image(i + 1, (64, 48))).any()
    with pytest.raises(ValueError, match="does not fit"):
        index_image(MAX_INDEX + 1, (64, 48))
