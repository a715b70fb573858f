"""Jinja2 prompt templates: the only place model-facing text lives (`prompts/`, shipped as `agentrm.prompts`).

StrictUndefined makes a template that names a missing variable fail loudly instead of rendering an empty string into
a prompt. A custom directory (`episode.prompt_dir`-style override) can replace any template by name.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from agentrm.errors import ConfigError

TEMPLATES = (
    "system.j2",
    "intro.j2",
    "frame_label.j2",
    "tool_result.j2",
    "tool_result_end.j2",
    "evicted.j2",
    "tool_error.j2",
    "repeated_call.j2",
    "parse_error.j2",
    "limit.j2",
)


class Prompts:
    def __init__(self, directory: str | Path | None = None) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if directory is not None:
            if not Path(directory).is_dir():
                raise ConfigError(f"prompt directory {directory} does not exist")
            loaders.append(jinja2.FileSystemLoader(str(directory)))
        packaged = resources.files("agentrm.prompts")
        loaders.append(jinja2.FunctionLoader(lambda name: _packaged(packaged, name)))
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=False,
            autoescape=False,  # prompts are plain text for a model, not HTML  # noqa: S701
        )

    def render(self, template: str, /, **variables: Any) -> str:
        try:
            return self.env.get_template(template).render(**variables)
        except jinja2.TemplateNotFound:
            raise ConfigError(f"prompt template {template!r} not found (known: {', '.join(TEMPLATES)})") from None
        except jinja2.UndefinedError as exc:
            raise ConfigError(f"prompt template {template!r}: {exc}; pass it when rendering") from None


def _packaged(root: Any, name: str) -> str | None:
    path = root.joinpath(name)
    return path.read_text(encoding="utf-8") if path.is_file() else None


@lru_cache(maxsize=1)
def default_prompts() -> Prompts:
    return Prompts()
