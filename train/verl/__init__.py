"""The verl adapter: the only place agentrm imports verl (pip-installed verl 0.9.x, no fork).

verl's agent-loop API lives under `verl.experimental` and moves between minor versions, so everything here is
pinned to `verl>=0.9.1,<0.10` (checked at import by `check_verl_version`). Modules:

- `agent_loop`: `AgentrmAgentLoop` (an `AgentLoopBase`) runs agentrm's own episode loop against verl's LLM server
  through `ServerEngine` (an agentrm `Engine`), one `AgentLoopOutput` per turn, and writes each rollout's Trace;
- `reward_fn`: verl-signature wrapper of `agentrm.train.rewards`;
- `engine`: `AgentrmRewardEngine`, verl's FSDP LM engine plus the reward head and the auxiliary BT loss;
- `plugin`: what verl imports through `actor_rollout_ref.model.external_lib` (registers the engine, and a processor
  fallback for torchvision-less hosts);
- `config`: verl's hydra overrides built from `GRPOConfig`, compose + validate (the `--dry-run`);
- `pairs`: the pointwise pair-layout check (verl settings that split a pair across batches), run by `config` and
  `trainer`;
- `trainer`: the V1 task runner and trainer subclass (reward components as metrics, pointwise partner scores);
- `export`: verl actor checkpoint -> agentrm checkpoint.

Importing this package does not import verl; each module does.
"""

from __future__ import annotations

SUPPORTED = (">=0.9.1", "<0.10")


def check_verl_version() -> str:
    """The installed verl version; raises EngineError when verl is missing or outside the supported range."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.version import Version

    from agentrm.errors import EngineError

    try:
        found = version("verl")
    except PackageNotFoundError:
        raise EngineError("verl is not installed: pip install -e '.[verl]' (verl>=0.9.1,<0.10)") from None
    v = Version(found)
    if not (Version("0.9.1") <= v < Version("0.10")):
        raise EngineError(f"verl {found} is installed but agentrm's adapter supports verl>=0.9.1,<0.10 (its "
                          "agent-loop API is experimental); install verl==0.9.1")
    return found
