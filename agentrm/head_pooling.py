"""Pooling reward heads: attention pooling with a learnable query (LightRFT) and a multi-layer attention-query
head (SoliReward). They read the whole sequence, not only the state at `<Reward>`.

Both share `forward(hidden_states, reward_mask, attention_mask) -> (N, num_outputs)` with `agentrm.head.RewardHead`
(N reward tokens in row-major order), so the trainer and engines treat every head alike. For the multi-layer head
`hidden_states` is the stack of the chosen layers, (L, B, T, H), in the order of `layers`; `needed_layers(head)`
says which layers to ask the backbone for (None = the last layer only).

What differs from the papers, and why:
- The pooling query is a learnable vector *plus* a projection of the reward token's own hidden state. A pairwise
  answer has two `<Reward>` tokens in one sequence (video 1, video 2); a query that ignored them would pool the
  same prefix twice and could not tell the videos apart.
- Each reward token attends over its own prefix only (tokens up to and including it, padding excluded), the causal
  view the backbone had there.
- The pooled vector is concatenated with the reward token's state before the MLP, so the head can always fall back
  to last-token pooling (LightRFT found pooling better; this keeps it no worse).
- Multi-layer: one pooling block (own LayerNorm, query, K/V) per chosen layer, mixed by softmax weights.
- Size: 3·H² weights per pooled layer (query, key and value projections), ~38M for H=3584; the linear head has
  H·dims.

Weights are float32 whatever the backbone dtype, initialised from a seed independent of the global RNG.

Checkpoints and trainers pick the head by `type` through `agentrm.head.AnyHeadConfig` / `build_head`.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from agentrm.config import StrictModel
from agentrm.head import init_linears, scoring_mlp

POOLING_TYPES: tuple[str, ...] = ("attn_pool", "attn_query")


class PoolingHeadConfig(StrictModel):
    type: Literal["attn_pool", "attn_query"] = Field(
        "attn_pool",
        description="attn_pool = learnable-query attention pooling over the last layer (LightRFT); "
        "attn_query = attention-query pooling over several layers (SoliReward).",
    )
    num_outputs: int = Field(4, ge=1, description="Scores per reward token (len(dims)).")
    mlp_hidden: int = Field(256, ge=1, description="Width of the MLP after pooling.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout before the output layer (training only).")
    num_heads: int = Field(4, ge=1, description="Attention heads of the pooling (LightRFT uses 4).")
    layers: list[int] = Field(
        default_factory=lambda: [-1],
        description="attn_query: hidden-state layers to pool (Python indices into the backbone's hidden_states "
        "tuple, -1 = last layer after the final norm). attn_pool always uses [-1].",
    )

    @model_validator(mode="after")
    def _layers(self) -> PoolingHeadConfig:
        if not self.layers:
            raise ValueError("layers must name at least one layer, e.g. [-1] or [-4, -2, -1]")
        if len(set(self.layers)) != len(self.layers):
            raise ValueError(f"layers has duplicates: {self.layers}")
        if self.type == "attn_pool" and self.layers != [-1]:
            raise ValueError("attn_pool pools the last layer only; use type=attn_query for several layers")
        return self


class _AttnPool(nn.Module):
    """One pooling block: each reward token's query attends over its own prefix of `states`."""

    def __init__(self, hidden: int, num_heads: int) -> None:
        super().__init__()
        if hidden % num_heads:
            raise ValueError(f"hidden size {hidden} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.norm = nn.LayerNorm(hidden)
        self.query = nn.Parameter(torch.zeros(hidden))
        self.q_token = nn.Linear(hidden, hidden, bias=False)
        self.k = nn.Linear(hidden, hidden, bias=False)
        self.v = nn.Linear(hidden, hidden, bias=False)

    def forward(
        self, states: torch.Tensor, rows: torch.Tensor, pos: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """states (B, T, H) float32; rows/pos (N,) of the reward tokens; attention_mask (B, T). -> (N, H)."""
        _, t, h = states.shape
        n, nh = rows.shape[0], self.num_heads
        dh = h // nh
        x = self.norm(states)
        token = x[rows, pos]  # (N, H)
        q = (self.query + self.q_token(token)).view(n, nh, dh)
        k = self.k(x)[rows].view(n, t, nh, dh)  # keys of each reward token's own row
        v = self.v(x)[rows].view(n, t, nh, dh)
        scores = torch.einsum("nhd,nthd->nht", q, k) / math.sqrt(dh)
        visible = (torch.arange(t, device=states.device).unsqueeze(0) <= pos.unsqueeze(1)) & attention_mask[
            rows
        ].bool()
        scores = scores.masked_fill(~visible.unsqueeze(1), float("-inf"))
        return torch.einsum("nht,nthd->nhd", scores.softmax(-1), v).reshape(n, h)


class _PoolingHead(nn.Module):
    def __init__(self, config: PoolingHeadConfig, hidden_size: int, seed: int = 0) -> None:
        super().__init__()
        self.config = config
        self.hidden_size = hidden_size
        self.layers = [-1] if config.type == "attn_pool" else list(config.layers)
        self.pools = nn.ModuleList(_AttnPool(hidden_size, config.num_heads) for _ in self.layers)
        self.layer_logits = nn.Parameter(torch.zeros(len(self.layers)))
        self.mlp = scoring_mlp(2 * hidden_size, config.mlp_hidden, config.dropout, config.num_outputs)
        self.reset_parameters(seed)

    @property
    def num_outputs(self) -> int:
        return self.config.num_outputs

    def reset_parameters(self, seed: int = 0) -> None:
        """Weights ~ N(0, 1/fan_in), biases and the query 0, LayerNorms identity; from `seed` alone."""
        init_linears(self, torch.Generator().manual_seed(seed))
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, nn.LayerNorm):
                    module.weight.fill_(1.0)
                    module.bias.zero_()
            for pool in self.pools:
                assert isinstance(pool, _AttnPool)
                pool.query.zero_()
            self.layer_logits.zero_()

    def forward(
        self,
        hidden_states: torch.Tensor,
        reward_mask: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """hidden_states (B, T, H), or (L, B, T, H) for the layers in `self.layers`; reward_mask (B, T) bool;
        attention_mask (B, T). Returns (N, num_outputs) float32, reward tokens row by row, left to right."""
        stack = hidden_states if hidden_states.dim() == 4 else hidden_states.unsqueeze(0)
        if stack.shape[0] != len(self.layers) or stack.shape[-1] != self.hidden_size:
            raise ValueError(
                f"expected hidden states ({len(self.layers)} layer(s), batch, seq, {self.hidden_size}), "
                f"got {tuple(hidden_states.shape)}"
            )
        if reward_mask.shape != stack.shape[1:3]:
            raise ValueError(f"reward_mask {tuple(reward_mask.shape)} must match {tuple(stack.shape[1:3])}")
        weight = self.layer_logits
        stack = stack.to(device=weight.device, dtype=weight.dtype)
        mask = torch.ones(reward_mask.shape, device=weight.device) if attention_mask is None else attention_mask
        rows, pos = reward_mask.bool().nonzero(as_tuple=True)
        rows, pos = rows.to(weight.device), pos.to(weight.device)
        mask = mask.to(weight.device)
        pooled = [pool(states, rows, pos, mask) for pool, states in zip(self.pools, stack, strict=True)]
        mix = torch.einsum("l,lnh->nh", weight.softmax(0), torch.stack(pooled))
        token = stack[-1][rows, pos]  # the reward token's own state, from the last listed layer
        return self.mlp(torch.cat([mix, token], dim=-1)).float()


class AttentionPoolHead(_PoolingHead):
    """LightRFT-style: learnable-query attention pooling over the last layer, then an MLP."""

    def __init__(self, config: PoolingHeadConfig, hidden_size: int, seed: int = 0) -> None:
        if config.type != "attn_pool":
            raise ValueError(f"AttentionPoolHead needs type=attn_pool, got {config.type}")
        super().__init__(config, hidden_size, seed)


class MultiLayerAttentionQueryHead(_PoolingHead):
    """SoliReward-style: attention-query pooling over several layers, softmax-mixed, then an MLP."""

    def __init__(self, config: PoolingHeadConfig, hidden_size: int, seed: int = 0) -> None:
        if config.type != "attn_query":
            raise ValueError(f"MultiLayerAttentionQueryHead needs type=attn_query, got {config.type}")
        super().__init__(config, hidden_size, seed)


def build_pooling_head(config: PoolingHeadConfig, hidden_size: int, seed: int = 0) -> _PoolingHead:
    if config.type == "attn_pool":
        return AttentionPoolHead(config, hidden_size, seed)
    return MultiLayerAttentionQueryHead(config, hidden_size, seed)


def needed_layers(head: nn.Module) -> list[int] | None:
    """Hidden-state layers a head reads (indices into the backbone's hidden_states tuple), or None when the last
    layer alone is enough (linear, mlp and attn_pool heads take (B, T, H))."""
    if isinstance(head, MultiLayerAttentionQueryHead):
        return list(head.layers)
    return None
