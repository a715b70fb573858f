"""The reward head: hidden states at the `<Reward>` tokens -> one score per judged dimension.

Two types today, both reading the last-layer hidden state (after the final norm) at each reward token:
- "linear": `Linear(hidden, num_outputs, bias=False)`, the DeScore / VideoAlign head;
- "mlp": Linear -> GELU -> Dropout -> Linear, a small non-linear variant.

Why `forward(hidden_states, reward_mask, attention_mask)` and not `forward(hidden_at_reward_tokens)`: the
heads planned for the cold-start issue (LightRFT-style attention pooling with a learnable query,
SoliReward-style attention-query heads over several layers) need the whole sequence, not only the vector at
`<Reward>`; each reward token must attend over the tokens before it, so the head needs the positions and the
padding mask too. With this signature those heads slot in as new `type`s (multi-layer heads would add a
`layers` field and receive the stacked layers) without touching the engine or the trainer, and the
position-only heads stay a one-line gather. The head keeps its own float32 weights whatever the backbone
dtype (bf16 rounding of rewards hurts BT losses).

    head = RewardHead(HeadConfig(type="linear", num_outputs=4), hidden_size=3584)
    rewards = head(last_hidden, input_ids == reward_id)      # (num_reward_tokens, 4)
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from agentrm.config import StrictModel


class HeadConfig(StrictModel):
    """What the head is; saved in agentrm.json so a checkpoint rebuilds the same module."""

    type: Literal["linear", "mlp"] = Field(
        "linear",
        description="linear = Linear(hidden, num_outputs, bias=False) (DeScore/VideoAlign); mlp = 2 layers.",
    )
    num_outputs: int = Field(
        4, ge=1, description="Scores per reward token: one per judged dimension (len(dims))."
    )
    mlp_hidden: int = Field(256, ge=1, description="mlp: width of the hidden layer.")
    dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="mlp: dropout before the output layer (training only)."
    )

    @model_validator(mode="after")
    def _linear_has_no_mlp_options(self) -> HeadConfig:
        if self.type == "linear" and self.dropout:
            raise ValueError("dropout applies to type=mlp only; set head.dropout=0 or head.type=mlp")
        return self


def scoring_mlp(in_features: int, hidden: int, dropout: float, outputs: int) -> nn.Sequential:
    """Linear -> GELU -> Dropout -> Linear: the MLP every non-linear head type ends in."""
    return nn.Sequential(nn.Linear(in_features, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, outputs))


def init_linears(module: nn.Module, gen: torch.Generator) -> None:
    """Every nn.Linear under `module`: weights ~ N(0, 1/fan_in) drawn from `gen`, biases 0."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * m.in_features**-0.5)
                if m.bias is not None:
                    m.bias.zero_()


class RewardHead(nn.Module):
    """Maps hidden states at reward-token positions to `config.num_outputs` scores each."""

    def __init__(self, config: HeadConfig, hidden_size: int, seed: int = 0) -> None:
        super().__init__()
        self.config = config
        self.hidden_size = hidden_size
        self.net: nn.Module
        if config.type == "linear":
            self.net = nn.Linear(hidden_size, config.num_outputs, bias=False)
        else:
            self.net = scoring_mlp(hidden_size, config.mlp_hidden, config.dropout, config.num_outputs)
        self.reset_parameters(seed)

    @property
    def num_outputs(self) -> int:
        return self.config.num_outputs

    def reset_parameters(self, seed: int = 0) -> None:
        """Deterministic init from `seed`, independent of the global RNG: a fresh head on a plain model gives
        the same (untrained) scores on every run. Weights ~ N(0, 1/fan_in), biases 0."""
        init_linears(self, torch.Generator().manual_seed(seed))

    def forward(
        self,
        hidden_states: torch.Tensor,
        reward_mask: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """hidden_states: (B, T, H) last-layer states; reward_mask: (B, T) bool, True at reward tokens;
        attention_mask: (B, T), 1 = real token (unused by the position heads, needed by pooling heads).
        Returns (N, num_outputs) float32 for the N reward tokens in row-major order (row by row, left to
        right)."""
        if hidden_states.dim() != 3 or hidden_states.shape[-1] != self.hidden_size:
            raise ValueError(
                f"hidden_states must be (batch, seq, {self.hidden_size}), got {tuple(hidden_states.shape)}"
            )
        if reward_mask.shape != hidden_states.shape[:2]:
            raise ValueError(
                f"reward_mask {tuple(reward_mask.shape)} must match {tuple(hidden_states.shape[:2])}"
            )
        return self.score_vectors(hidden_states[reward_mask.bool()])

    def score_vectors(self, vectors: torch.Tensor) -> torch.Tensor:
        """(N, H) hidden vectors already gathered at reward tokens -> (N, num_outputs) float32."""
        weight = next(self.parameters())
        return self.net(vectors.to(device=weight.device, dtype=weight.dtype)).float()


# ---- every head type, for checkpoints and trainers -------------------------------------------------------------
from agentrm.head_pooling import PoolingHeadConfig, build_pooling_head  # noqa: E402  (pooling builds on this module)

AnyHeadConfig = HeadConfig | PoolingHeadConfig  # linear/mlp | attn_pool/attn_query (told apart by `type`)


def build_head(config: AnyHeadConfig, hidden_size: int, seed: int = 0) -> nn.Module:
    """The head module for any head config (all share the `forward(hidden_states, reward_mask, attention_mask)`
    signature; multi-layer heads take stacked layers, see `agentrm.head_pooling.needed_layers`)."""
    if isinstance(config, PoolingHeadConfig):
        return build_pooling_head(config, hidden_size, seed)
    return RewardHead(config, hidden_size, seed)
