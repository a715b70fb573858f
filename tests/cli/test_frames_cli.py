"""`agentrm frames`: metadata, PNGs of the requested frames, readable errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agentrm.cli import main
from agentrm.video.synthetic import read_index, write_index_video


@pytest.fixture
def clip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AGENTRM_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "clip.mp4"
    write_index_video(path, 90, 30, (128, 72), gop=30)
    return path


def test_writes_requested_frames_as_png(
    clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pngs"
    assert main(["frames", str(clip), "--at", "89,0,40:70:10", "--out", str(out)]) == 0
    files = sorted(out.glob("*.png"))
    assert [f.name for f in files] == [f"clip_{i:06d}.png" for i in (0, 40, 50, 60, 89)]
    for f in files:
        pixels = np.asarray(Image.open(f))
        assert pixels.shape == (72, 128, 3)
        assert read_index(pixels) == int(f.stem.split("_")[1])
    text = capsys.readouterr().out
    assert "90 (0..89)" in text and "30" in text and "128x72" in text and "h264" in text


def test_times_and_resizing(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "t"
    args = [
        "frames",
        str(clip),
        "--times",
        "0,1.5,2.99",
        "--out",
        str(out),
        "--max-pixels",
        "3136",
        "--factor",
        "28",
    ]
    assert main(args) == 0
    files = sorted(out.glob("*.png"))
    assert [read_index(np.asarray(Image.open(f))) for f in files] == [0, 45, 89]
    assert np.asarray(Image.open(files[0])).shape == (28, 56, 3)


def test_metadata_only_and_other_backend(
    clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["frames", str(clip), "--backend", "opencv"]) == 0
    assert "opencv" in capsys.readouterr().out
    assert not list(tmp_path.glob("*_frames"))


def test_bad_input_exits_2_naming_the_file(
    clip: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert main(["frames", str(tmp_path / "missing.mp4")]) == 2
    assert "missing.mp4" in caplog.text and "does not exist" in caplog.text
    assert main(["frames", str(clip), "--at", "90", "--out", str(tmp_path / "o")]) == 2
    assert "frames are 0..89" in caplog.text


def test_bad_positions_are_usage_errors(clip: Path) -> None:
    with pytest.raises(SystemExit):
        main(["frames", str(clip), "--at", "1,x"])
    with pytest.raises(SystemExit):
        main(["frames", str(clip), "--at", "1", "--times", "2"])
