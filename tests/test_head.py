"""RewardHead: shapes, gather order, dtype handling, deterministic init, config validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from agentrm.head import HeadConfig, RewardHead
from agentrm.models import hidden_size, load_model_and_processor


def test_linear_head_is_descore_style() -> None:
    head = RewardHead(HeadConfig(type="linear", num_outputs=3), hidden_size=32)
    params = dict(head.named_parameters())
    assert list(params) == ["net.weight"]  # Linear(hidden, dims, bias=False)
    assert params["net.weight"].shape == (3, 32)


def test_mlp_head_shapes() -> None:
    head = RewardHead(HeadConfig(type="mlp", num_outputs=4, mlp_hidden=16, dropout=0.1), hidden_size=32)
    shapes = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert shapes == {
        "net.0.weight": (16, 32),
        "net.0.bias": (16,),
        "net.3.weight": (4, 16),
        "net.3.bias": (4,),
    }
    head.eval()
    out = head.score_vectors(torch.randn(5, 32))
    assert out.shape == (5, 4) and out.dtype == torch.float32


def test_forward_gathers_reward_positions_row_major() -> None:
    torch.manual_seed(0)
    head = RewardHead(HeadConfig(num_outputs=2), hidden_size=8)
    hidden = torch.randn(2, 5, 8)
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[0, 4] = mask[1, 1] = mask[1, 3] = True
    out = head(hidden, mask)
    assert out.shape == (3, 2)
    w = head.net.weight
    expected = torch.stack([hidden[0, 4], hidden[1, 1], hidden[1, 3]]) @ w.T
    assert torch.allclose(out, expected, atol=1e-6)
    assert head(hidden, torch.zeros(2, 5, dtype=torch.bool)).shape == (0, 2)


def test_bf16_hidden_gives_float32_scores() -> None:
    head = RewardHead(HeadConfig(num_outputs=4), hidden_size=8)
    hidden = torch.randn(1, 3, 8).to(torch.bfloat16)
    mask = torch.tensor([[False, True, True]])
    out = head(hidden, mask)
    assert out.dtype == torch.float32 and out.shape == (2, 4)
    assert head.net.weight.dtype == torch.float32


def test_init_is_deterministic_and_independent_of_global_rng() -> None:
    torch.manual_seed(1)
    a = RewardHead(HeadConfig(type="mlp", num_outputs=4), 16)
    torch.manual_seed(2)
    b = RewardHead(HeadConfig(type="mlp", num_outputs=4), 16)
    c = RewardHead(HeadConfig(type="mlp", num_outputs=4), 16, seed=1)
    for (k, va), vb, vc in zip(
        a.state_dict().items(), b.state_dict().values(), c.state_dict().values(), strict=True
    ):
        assert torch.equal(va, vb), k
        if k.endswith("weight"):
            assert not torch.equal(va, vc), k
    assert 0.5 < float(a.net[0].weight.detach().std() * 16**0.5) < 1.5  # N(0, 1/fan_in)


def test_shape_errors_are_clear() -> None:
    head = RewardHead(HeadConfig(num_outputs=2), hidden_size=8)
    with pytest.raises(ValueError, match="hidden_states must be"):
        head(torch.randn(1, 3, 16), torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="reward_mask"):
        head(torch.randn(1, 3, 8), torch.ones(1, 4, dtype=torch.bool))


def test_head_config_validation() -> None:
    with pytest.raises(ValidationError, match="extra"):
        HeadConfig.model_validate({"type": "linear", "num_output": 3})
    with pytest.raises(ValidationError, match="dropout applies to type=mlp"):
        HeadConfig(type="linear", dropout=0.2)
    with pytest.raises(ValidationError):
        HeadConfig(type="attention")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        HeadConfig(num_outputs=0)


def test_hidden_size_comes_from_the_model(tiny_qwen3_vl_dir: Path) -> None:
    model, _ = load_model_and_processor(tiny_qwen3_vl_dir)
    head = RewardHead(HeadConfig(num_outputs=4), hidden_size(model))
    assert head.net.weight.shape == (4, model.config.text_config.hidden_size)
