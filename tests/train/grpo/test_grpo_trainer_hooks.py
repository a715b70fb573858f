"""AgentrmTrainer's hooks driven through verl 0.9.1's own trainer code on CPU.

TransferQueue needs Ray actors (a controller and storage units, one CPU each), so the hooks run against
`FakeTransferQueue`: verl's KV calls with the real signatures (asserted below) and the real backend's return shapes
(tensor fields as jagged nested tensors, other fields as NonTensorStack, missing fields silently left out - as the
SimpleStorage backend of transfer_queue 0.1.11 does). verl's `_compute_old_log_prob` / `_compute_metrics` and its
padding (`upsample_batch_to_divisible_size`) run unchanged on top of it; only the actor worker group is faked.
"""

from __future__ import annotations

import copy
import inspect
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

pytestmark = pytest.mark.verl

NAN = float("nan")
DIMS = 4


class FakeTransferQueue:
    """In-memory `transfer_queue` KV API (kv_batch_get / kv_batch_put) as verl's V1 trainer calls it."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.tags: dict[tuple[str, str], dict[str, Any]] = {}

    def kv_batch_put(self, keys: list[str], partition_id: str, fields: Any = None,
                     tags: list[dict[str, Any]] | None = None, data_parser: Any = None) -> Any:
        from transfer_queue import KVBatchMeta

        if fields is None and tags is None:
            raise ValueError("Please provide at least one parameter of `fields` or `tags`.")
        for i, key in enumerate(keys):
            self.rows.setdefault((partition_id, key), {})
            self.tags.setdefault((partition_id, key), {}).update(copy.deepcopy(tags[i]) if tags else {})
        for name in fields.keys() if fields is not None else []:
            value = fields[name]
            per_row = list(value.unbind()) if isinstance(value, torch.Tensor) else list(value)
            assert len(per_row) == len(keys), name
            for key, v in zip(keys, per_row, strict=True):
                self.rows[(partition_id, key)][name] = v.clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v)
        names = sorted({n for k in keys for n in self.rows[(partition_id, k)]})
        return KVBatchMeta(keys=list(keys), tags=[self.tags[(partition_id, k)] for k in keys],
                           partition_id=partition_id, fields=names)

    def kv_batch_get(self, keys: list[str] | str, partition_id: str,
                     select_fields: list[str] | str | None = None) -> Any:
        from tensordict import NonTensorStack, TensorDict

        keys = [keys] if isinstance(keys, str) else list(keys)
        rows = [self.rows[(partition_id, k)] for k in keys]
        names = [select_fields] if isinstance(select_fields, str) else select_fields
        names = sorted(rows[0]) if names is None else names
        out: dict[str, Any] = {}
        for name in names:
            if not all(name in r for r in rows):
                continue  # the real backend leaves missing fields out, it does not raise
            values = [r[name] for r in rows]
            if all(isinstance(v, torch.Tensor) and v.ndim >= 1 for v in values):
                out[name] = torch.nested.as_nested_tensor([v.clone() for v in values], layout=torch.jagged)
            else:
                out[name] = NonTensorStack(*[copy.deepcopy(v) for v in values])
        return TensorDict(out, batch_size=[len(keys)] if out else [0])


class FakeActorWorkerGroup:
    """`actor_rollout_wg.compute_log_prob(KVBatchMeta)`: like verl's tqbridge it reads the rows and writes the
    engine's model outputs back (log-probs over prompt+response, entropy, AgentrmRewardEngine's head scores)."""

    def __init__(self, store: FakeTransferQueue, head: dict[str, list[float]], write_scores: bool = True) -> None:
        self.store, self.head, self.write_scores = store, head, write_scores

    def compute_log_prob(self, batch: Any) -> Any:
        from tensordict import TensorDict

        data = self.store.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id,
                                       select_fields=["input_ids"])
        lengths = [len(t) for t in data["input_ids"].unbind()]
        fields: dict[str, Any] = {
            "log_probs": torch.nested.as_nested_tensor([torch.full((n,), -0.5) for n in lengths], layout=torch.jagged),
            "entropy": torch.nested.as_nested_tensor([torch.full((n,), 1.0) for n in lengths], layout=torch.jagged)}
        if self.write_scores:
            fields["agentrm_scores"] = torch.tensor([self.head.get(k, [NAN] * DIMS) for k in batch.keys])
        return self.store.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id,
                                       fields=TensorDict(fields, batch_size=[len(batch.keys)]))


def tq_row(uid: str, session: int, turn: int, last: bool, pair: tuple[str, str] | None,
           reward: dict[str, float] | None = None) -> dict[str, Any]:
    """One output row as AgentLoopWorkerTQ._agent_loop_postprocess stores it (agent loop's extra_fields included)."""
    from agentrm.train.grpo_data import pair_fields

    prompt, response = torch.arange(5 + turn), torch.arange(3)
    extra = {"agentrm_turn": turn + 1, "agentrm_last_row": last, "agentrm_answer_row": last,
             **pair_fields({"pair_id": pair[0], "pair_role": pair[1]} if pair else {}, session)}
    if reward is not None:
        extra["reward_extra_info"] = reward
    return {"prompts": prompt, "responses": response, "response_mask": torch.ones(3, dtype=torch.int64),
            "loss_mask": torch.ones(3, dtype=torch.int64), "input_ids": torch.cat([prompt, response]),
            "attention_mask": torch.ones(8 + turn, dtype=torch.int64), "rollout_log_probs": torch.full((3,), -0.4),
            "rm_scores": torch.tensor([0.0, 0.0, (reward or {}).get("score", 0.0)]),
            "advantages": torch.full((3,), 0.5), "returns": torch.full((3,), 0.5), "num_turns": turn + 1,
            "uid": uid, "session_id": session, "extra_fields": extra,
            "extra_info": {"pair_id": pair[0] if pair else "", "pair_role": pair[1] if pair else ""}}


def put_batch(store: FakeTransferQueue, rows: dict[str, dict[str, Any]]) -> Any:
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    tags = [{"status": "success", "global_steps": 1, "min_global_steps": 1, "max_global_steps": 1,
             "seq_len": len(r["input_ids"])} for r in rows.values()]
    return store.kv_batch_put(keys=list(rows), partition_id="train",
                              fields=list_of_dict_to_tensordict(list(rows.values())), tags=tags)


@pytest.fixture(scope="module")
def verl_config(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from agentrm.train.grpo_config import GRPOConfig
    from agentrm.train.verl.config import RunPaths, build_overrides, compose

    tmp = tmp_path_factory.mktemp("trainer-hooks")
    cfg = GRPOConfig.model_validate({
        "data": {"train": "items.jsonl", "split_pairs": True}, "model": {"path": "m"}, "output_dir": str(tmp),
        "episode": {"mode": "pointwise"}, "algo": {"train_batch_size": 4, "ppo_mini_batch_size": 2, "n": 2},
        "cluster": {"n_gpus_per_node": 1}})
    return compose(build_overrides(cfg, RunPaths.under(tmp, False)))


@pytest.fixture()
def store(monkeypatch: pytest.MonkeyPatch) -> FakeTransferQueue:
    """One FakeTransferQueue behind every module that calls `tq.*` on this path (verl's and ours)."""
    import verl.trainer.ppo.padding_utils as padding_utils
    import verl.trainer.ppo.v1.trainer_base as trainer_base

    import agentrm.train.verl.trainer as trainer

    fake = FakeTransferQueue()
    for module in (trainer_base, padding_utils, trainer):
        monkeypatch.setattr(module, "tq", fake)
    return fake


def make_trainer(config: Any, **overrides: Any) -> Any:
    from omegaconf import OmegaConf
    from verl.trainer.ppo.v1.trainer_base import get_trainer_cls

    from agentrm.train.verl.trainer import TRAINER_MODE

    config = copy.deepcopy(config)
    for key, value in overrides.items():
        OmegaConf.update(config, key, value, force_add=True)
    return get_trainer_cls(TRAINER_MODE)(config)


# --------------------------------------------------------------------------------------------------- contracts
def test_fake_transfer_queue_has_verls_signatures() -> None:
    import transfer_queue
    import verl.trainer.ppo.v1.trainer_base as trainer_base

    def params(fn: Any) -> list[tuple[str, Any, Any]]:
        return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]

    fake = FakeTransferQueue()
    assert params(fake.kv_batch_get) == params(transfer_queue.kv_batch_get)
    assert params(fake.kv_batch_put) == params(transfer_queue.kv_batch_put)
    assert trainer_base.tq is transfer_queue  # what the fixture replaces is what verl calls


def test_agent_loop_stamps_pair_key_and_rollout(prepared_dir: Path, items_jsonl: Path, tmp_path: Path) -> None:
    from grpo_helpers import POINT_ANSWER, TOOL1, scripted_rollout

    from agentrm.train.grpo_data import pair_key

    outputs, _, _, kwargs = scripted_rollout(prepared_dir, items_jsonl, tmp_path, item=1, session=3,
                                             turns=[TOOL1, POINT_ANSWER], pointwise=True)
    assert kwargs["extra_info"]["pair_role"] == "2"  # row 1 = video 2 of pair-a
    assert [pair_key(o.extra_fields) for o in outputs] == [("pair-a", "2", 3)] * len(outputs)


def test_trainer_takes_verls_sync_path(verl_config: Any) -> None:
    from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer

    from agentrm.errors import ConfigError

    trainer = make_trainer(verl_config)
    # verl picks ReplayBufferAsync + one-row refills for any trainer_mode spelled other than "sync"
    assert trainer.trainer_mode == "sync" and type(trainer.replay_buffer) is ReplayBuffer
    assert trainer.pointwise_pairs and trainer.pair_dims == DIMS
    for key, value, fix in (("data.train_batch_size", 3, "odd"), ("data.shuffle", True, "data.shuffle"),
                            ("algorithm.filter_groups.enable", True, "DAPO"),
                            ("algorithm.rollout_correction.bypass_mode", True, "bypass_mode"),
                            ("trainer.v1.agentrm_sync.parameter_sync_step", 2, "parameter_sync_step=2")):
        with pytest.raises(ConfigError, match=fix):
            make_trainer(verl_config, **{key: value})
    make_trainer(verl_config, **{"agentrm.pointwise_pairs": False, "data.train_batch_size": 3})  # no pairs, no check


# ----------------------------------------------------------------------------------------------- the pure join
K1, K2 = ("p", "1", 0), ("p", "2", 0)


@pytest.mark.parametrize(("keys", "scores", "padding", "found_rows", "counts"), [
    # partners far apart in the batch, in reverse order
    ([K2, None, None, K1], [[2.0] * 4, [NAN] * 4, [NAN] * 4, [1.0] * 4], None, {0: 3, 3: 0},
     {"scored": 2, "found": 2, "missing": 0}),
    # rollout j pairs with rollout j only
    ([("p", "1", 0), ("p", "2", 1)], [[1.0] * 4, [2.0] * 4], None, {}, {"scored": 2, "found": 0, "missing": 2}),
    # partner present but unscored (no answer / truncated <Reward>): missing; an unscored row still gets its partner's
    ([K1, K2], [[1.0] * 4, [NAN] * 4], None, {1: 0}, {"scored": 1, "found": 0, "missing": 1}),
    # two scored rows under one key: a layout bug, never silently paired
    ([K1, K1, K2], [[1.0] * 4, [3.0] * 4, [2.0] * 4], None, {}, {"scored": 3, "found": 0, "ambiguous": 3}),
    # scored row that is no split-pair member (no pair id / no rollout index)
    ([None, K2], [[1.0] * 4, [2.0] * 4], None, {}, {"scored": 2, "unkeyed": 1, "missing": 1}),
    # verl's padding row copies row 0's extra_fields (same key): excluded, row 0 keeps its partner
    ([K1, K2, K1], [[1.0] * 4, [2.0] * 4, [9.0] * 4], [False, False, True], {0: 1, 1: 0},
     {"scored": 2, "found": 2, "ambiguous": 0}),
])
def test_join_partner_scores(keys: list[Any], scores: list[list[float]], padding: list[bool] | None,
                             found_rows: dict[int, int], counts: dict[str, int]) -> None:
    from agentrm.train.verl.trainer import join_partner_scores

    s = torch.tensor(scores)
    partner, metrics = join_partner_scores(keys, s, padding)
    assert partner.shape == (len(keys), DIMS)
    for i in range(len(keys)):
        if i in found_rows:
            assert partner[i].tolist() == s[found_rows[i]].tolist()
        else:
            assert torch.isnan(partner[i]).all(), i  # NaN, never zero: the engine skips and counts the row
    for name, value in counts.items():
        assert metrics[f"agentrm/pairs/{name}"] == value, name


def test_join_partner_scores_refuses_misshaped_scores() -> None:
    from agentrm.train.verl.trainer import join_partner_scores

    with pytest.raises(ValueError, match="do not match 3 rows"):
        join_partner_scores([K1, K2, None], torch.zeros(2, DIMS))


# ------------------------------------------------------------------------------------- hooks through verl's code
def pair_batch() -> tuple[dict[str, dict[str, Any]], dict[str, list[float]]]:
    """Two pairs (p, q) x n=2 rollouts, shuffled the way the replay buffer materialises keys; q's video-2 rollout 1
    failed (no rows) and p's video-1 rollout 1 never answered (no score)."""
    rows, head = {}, {}
    for pid, role, uid in (("p", "1", "a"), ("p", "2", "b"), ("q", "1", "c"), ("q", "2", "d")):
        for session in (0, 1):
            if (pid, role, session) == ("q", "2", 1):
                continue
            for turn in (0, 1):
                key = f"{uid}_{session}_{turn}"
                rows[key] = tq_row(uid, session, turn, last=turn == 1, pair=(pid, role))
                if turn == 1 and (pid, role, session) != ("p", "1", 1):
                    head[key] = [float(ord(uid) - 96) + session / 10] * DIMS
    keys = sorted(rows, key=lambda k: k[::-1])  # partners far apart, turn-major
    return {k: rows[k] for k in keys}, head


def test_old_log_prob_hook_writes_partner_scores(verl_config: Any, store: FakeTransferQueue) -> None:
    from verl.trainer.ppo.padding_utils import upsample_batch_to_divisible_size

    from agentrm.train.verl.trainer import PARTNER_SCORES

    trainer = make_trainer(verl_config)
    rows, head = pair_batch()
    batch = upsample_batch_to_divisible_size(put_batch(store, rows), 16, eos_token_id=0)  # verl's padding rows
    assert len(batch) == 16 and sum(t.get("is_padding", False) for t in batch.tags) == 2
    trainer.actor_rollout_wg = FakeActorWorkerGroup(store, head)
    metrics: dict[str, Any] = {}
    out = trainer._compute_old_log_prob(batch, metrics)

    assert out.keys == batch.keys and PARTNER_SCORES in out.fields
    assert metrics["actor/entropy"] == pytest.approx(1.0)  # verl's own part of the hook ran
    partner = {k: store.rows[("train", k)][PARTNER_SCORES].tolist() for k in batch.keys}
    assert partner["a_0_1"] == head["b_0_1"] and partner["b_0_1"] == head["a_0_1"]  # rollout 0 <-> rollout 0
    assert partner["c_0_1"] == head["d_0_1"] and partner["d_0_1"] == head["c_0_1"]
    assert all(math.isnan(v) for v in partner["b_1_1"])  # a_1 never answered
    assert all(math.isnan(v) for v in partner["c_1_1"])  # d_1 failed: no rows at all
    assert all(math.isnan(v) for k in batch.keys if k.startswith("pad") for v in partner[k])
    assert {k: v for k, v in metrics.items() if k.startswith("agentrm/")} == {
        "agentrm/pairs/scored": 6.0, "agentrm/pairs/found": 4.0, "agentrm/pairs/missing": 2.0,
        "agentrm/pairs/ambiguous": 0.0, "agentrm/pairs/unkeyed": 0.0, "agentrm/pairs/found_frac": 4 / 6}


def test_old_log_prob_hook_without_head_scores_is_a_config_error(verl_config: Any, store: FakeTransferQueue) -> None:
    from agentrm.errors import ConfigError

    trainer = make_trainer(verl_config)
    rows, head = pair_batch()
    trainer.actor_rollout_wg = FakeActorWorkerGroup(store, head, write_scores=False)  # e.g. the stock LM engine
    with pytest.raises(ConfigError, match="agentrm_reward_lm"):
        trainer._compute_old_log_prob(put_batch(store, rows), {})


def test_compute_metrics_hook_logs_each_episode_once(verl_config: Any, store: FakeTransferQueue) -> None:
    from verl.trainer.ppo.padding_utils import upsample_batch_to_divisible_size

    trainer = make_trainer(verl_config)
    rows: dict[str, dict[str, Any]] = {}
    for uid, session, acc in (("a", 0, 1.0), ("a", 1, 0.0), ("b", 0, 1.0)):
        info = {"score": acc + 0.5, "overall_acc": acc, "dims_acc": NAN if uid == "b" else acc / 2}
        for turn in (0, 1):  # verl copies the episode's reward_extra_info onto every row of it
            rows[f"{uid}_{session}_{turn}"] = tq_row(uid, session, turn, last=turn == 1, pair=None, reward=info)
    rows = dict(sorted(rows.items(), key=lambda kv: kv[0][-1] == "0"))  # a last row first: padding copies it
    batch = upsample_batch_to_divisible_size(put_batch(store, rows), 8, eos_token_id=0)
    trainer.resource_pool_manager = SimpleNamespace(get_n_gpus=lambda: 1)  # set by init() (Ray resource pools)
    assert store.rows[("train", batch.keys[-1])]["extra_fields"]["agentrm_last_row"] is True  # a copied last row
    metrics: dict[str, Any] = {}
    trainer._compute_metrics(batch, metrics, {"step": 1.0}, global_steps=1, epoch=0)

    assert "critic/score/mean" in metrics  # verl's own metrics ran
    assert metrics["reward/episodes"] == 3.0  # not 5: padding rows and earlier turns are not episodes
    assert metrics["reward/overall_acc/mean"] == pytest.approx(2 / 3)
    assert metrics["reward/score/mean"] == pytest.approx((1.5 + 0.5 + 1.5) / 3)
    assert metrics["reward/dims_acc/mean"] == pytest.approx(0.25)  # NaN components are left out, not zeroed
