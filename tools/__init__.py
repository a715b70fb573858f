"""The agent's frame tools (importable as `agentrm.tools`), one module each.

A tool only chooses frames; the episode loop decodes them. Add a tool by writing a module with a class following
`agentrm.tooling.Tool` and listing it in REGISTRY.
"""

from agentrm.tooling import Tool
from agentrm.tools.select_frames import SelectFrames
from agentrm.tools.select_range import SelectRange

REGISTRY: dict[str, type[Tool]] = {SelectFrames.name: SelectFrames, SelectRange.name: SelectRange}

__all__ = ["REGISTRY", "SelectFrames", "SelectRange"]
