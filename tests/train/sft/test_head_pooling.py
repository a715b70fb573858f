"""Pooling heads (LightRFT attention pooling, SoliReward multi-layer attention query): each reward token pools only
its own prefix, padding is ignored, the two reward tokens of a pair score differently, gradients reach every part."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from agentrm.head_pooling import (
    AttentionPoolHead,
    MultiLayerAttentionQueryHead,
    PoolingHeadConfig,
    build_pooling_head,
    needed_layers,
)

H = 32


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(2, 9, H, generator=g)
    mask = torch.zeros(2, 9, dtype=torch.bool)
    mask[0, 4] = mask[0, 6] = True  # a pairwise answer: video 1's and video 2's <Reward>
    mask[1, 5] = True
    attn = torch.ones(2, 9, dtype=torch.long)
    attn[1, 7:] = 0  # row 1 is right-padded
    return hidden, mask, attn


def test_attn_pool_reads_each_reward_tokens_prefix_only() -> None:
    head = build_pooling_head(PoolingHeadConfig(type="attn_pool", num_outputs=3, num_heads=4), H)
    assert isinstance(head, AttentionPoolHead) and needed_layers(head) is None
    hidden, mask, attn = _inputs()
    out = head(hidden, mask, attn)
    assert out.shape == (3, 3) and out.dtype == torch.float32
    assert not torch.allclose(out[0], out[1])  # video 1 vs video 2 slot of one sequence
    later = hidden.clone()
    later[0, 5] += torch.randn(H)  # after the first reward token, before the second
    changed = head(later, mask, attn)
    assert torch.equal(changed[0], out[0]) and not torch.allclose(changed[1], out[1])
    earlier = hidden.clone()
    earlier[0, 1] += torch.randn(H)
    assert not torch.allclose(head(earlier, mask, attn)[0], out[0])
    padded = hidden.clone()
    padded[1, 7:] = 100.0  # padding positions: never attended
    assert torch.equal(head(padded, mask, attn)[2], out[2])


def test_multi_layer_head_uses_every_listed_layer() -> None:
    cfg = PoolingHeadConfig(type="attn_query", num_outputs=2, layers=[-3, -1], num_heads=2, mlp_hidden=16)
    head = build_pooling_head(cfg, H)
    assert isinstance(head, MultiLayerAttentionQueryHead) and needed_layers(head) == [-3, -1]
    hidden, mask, attn = _inputs()
    stack = torch.stack([hidden, hidden.flip(-1)])
    out = head(stack, mask, attn)
    assert out.shape == (3, 2)
    other = stack.clone()
    other[0, 0, 2] += torch.randn(H)  # the first listed layer only
    assert not torch.allclose(head(other, mask, attn)[0], out[0])
    with pytest.raises(ValueError, match="2 layer"):
        head(hidden, mask, attn)  # one layer given, two needed
    out.sum().backward()
    for name, p in head.named_parameters():
        assert p.grad is not None, name
    assert head.layer_logits.grad is not None and head.layer_logits.grad.abs().sum() > 0


def test_seeded_init_and_no_reward_tokens() -> None:
    cfg = PoolingHeadConfig(num_outputs=4)
    a, b = build_pooling_head(cfg, H, seed=3), build_pooling_head(cfg, H, seed=3)
    hidden, mask, attn = _inputs()
    assert torch.equal(a(hidden, mask, attn), b(hidden, mask, attn))
    none = a(hidden, torch.zeros_like(mask), attn)
    assert none.shape == (0, 4)


def test_config_validation() -> None:
    with pytest.raises(ValidationError, match="attn_pool pools the last layer only"):
        PoolingHeadConfig(type="attn_pool", layers=[-2])
    with pytest.raises(ValidationError, match="duplicates"):
        PoolingHeadConfig(type="attn_query", layers=[-1, -1])
    with pytest.raises(ValueError, match="not divisible"):
        build_pooling_head(PoolingHeadConfig(num_heads=5), H)
