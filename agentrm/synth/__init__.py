"""The synthetic long-video preference task (`agentrm synth`): scenes with short local defects, labels checked
against pixels, a scripted searching teacher, and the learning-proof experiment. See `agentrm.synth.scenes`."""

from agentrm.synth.scenes import DEFECT_DIM, DefectSpec, VideoSpec, check_frame, read_frame, render_frame

__all__ = ["DEFECT_DIM", "DefectSpec", "VideoSpec", "check_frame", "read_frame", "render_frame"]
