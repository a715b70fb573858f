"""One verl FSDP2 train step of AgentrmRewardEngine on CPU, run as its own process by test_grpo_engine.py.

Why a separate process: verl's FSDP engine monkey-patches transformers' Qwen-VL classes process-wide and the step
needs a CPU platform + a gloo process group; none of that may leak into the other tests. Prints one JSON line.

    python engine_step.py PREPARED_DIR ITEMS_JSONL WORK_DIR
"""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(1)

from cpu_platform import install_cpu_platform  # noqa: E402
from grpo_helpers import POINT_ANSWER, TOOL1, scripted_rollout, verl_postprocess  # noqa: E402


def v1_batch(outputs: list[Any], processor: Any, kwargs: dict[str, Any], partner: list[float] | None = None) -> Any:
    """The TensorDict verl's V1 trainer hands the actor: per-row fields as AgentLoopWorkerTQ stores them, plus the
    advantage / old / ref log-probs the trainer adds before update_actor."""
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    fields = []
    for out in outputs:
        post = verl_postprocess(processor, out)
        f = out.as_dict()
        f.update(kwargs)
        f.pop("multi_modal_data", None)
        f.update(loss_mask=f["response_mask"], input_ids=post["input_ids"],
                 position_ids=post["position_ids"].squeeze(0), multi_modal_inputs=post["mm"])
        n = f["responses"].shape[0]
        f.update(advantages=torch.full((n,), 0.7), old_log_probs=torch.full((n,), -0.5),
                 ref_log_prob=torch.full((n,), -0.5))
        if partner is not None:  # AgentrmTrainer._compute_old_log_prob writes this field (pointwise runs)
            f["agentrm_partner_scores"] = torch.tensor(partner)
        fields.append(f)
    return list_of_dict_to_tensordict(fields)


def meta(data: Any, **extra: Any) -> Any:
    """The non-tensor settings TrainingWorker / the trainer attach; one micro-batch holds every row."""
    from verl.utils import tensordict_utils as tu

    n = int(data.batch_size[0])
    tu.assign_non_tensor(data, use_remove_padding=False, use_dynamic_bsz=False, micro_batch_size_per_gpu=n,
                         max_token_len_per_gpu=None, use_fused_kernels=False, temperature=1.0, global_batch_size=n,
                         calculate_entropy=False, **extra)
    return data


def build_engine(prepared_dir: Path, items_jsonl: Path, tmp: Path) -> tuple[Any, Any]:
    install_cpu_platform()
    from verl.utils.config import omega_conf_to_dataclass
    from verl.workers.engine import EngineRegistry

    import agentrm.train.verl.plugin  # noqa: F401
    from agentrm.train.grpo_config import GRPOConfig
    from agentrm.train.verl.config import RunPaths, build_overrides, compose

    cfg = GRPOConfig.model_validate({
        "data": {"train": str(items_jsonl)}, "output_dir": str(tmp / "out"),
        "model": {"path": "unused", "attn_implementation": "sdpa", "gradient_checkpointing": False,
                  "remove_padding": False},  # verl's packed path needs flash-attn
        "algo": {"train_batch_size": 1, "ppo_mini_batch_size": 1, "n": 2, "lr": 1e-3},
        "cluster": {"n_gpus_per_node": 1},
        "verl_overrides": ["+actor_rollout_ref.actor.fsdp_config.mixed_precision.param_dtype=fp32"],
    })
    paths = RunPaths(tmp / "t.parquet", None, prepared_dir, tmp / "snap.json", tmp / "loops.yaml")
    config = compose(build_overrides(cfg, paths))  # the launcher's own config, into verl's dataclasses
    model_config = omega_conf_to_dataclass(config.actor_rollout_ref.model)
    actor = omega_conf_to_dataclass(config.actor_rollout_ref.actor)
    actor.model_config = model_config
    eng = actor.engine  # as ActorRolloutRefWorker.init_model / TrainingWorker configure it
    eng.use_remove_padding, eng.use_dynamic_bsz, eng.micro_batch_size_per_gpu = False, False, 3
    engine = EngineRegistry.new(model_type=model_config.model_type, backend=eng.strategy, model_config=model_config,
                                engine_config=eng, optimizer_config=actor.optim, checkpoint_config=actor.checkpoint)
    engine.initialize()
    return engine, actor


def weights(engine: Any) -> dict[str, torch.Tensor]:
    return {n: p.detach().full_tensor().clone() for n, p in engine.module.named_parameters()}


def main(prepared_dir: Path, items_jsonl: Path, tmp: Path) -> dict[str, Any]:
    from verl.workers.utils.losses import ppo_loss

    import agentrm
    from agentrm.train.verl.engine import AgentrmRewardEngine
    from agentrm.train.verl.export import export_checkpoint, latest_actor_dir

    engine, actor = build_engine(prepared_dir, items_jsonl, tmp)
    res: dict[str, Any] = {"engine_class": type(engine).__name__,
                           "is_agentrm_engine": isinstance(engine, AgentrmRewardEngine)}
    (tmp / "rollout").mkdir()
    outputs, _, processor, kwargs = scripted_rollout(prepared_dir, items_jsonl, tmp / "rollout")
    loss_fn = partial(ppo_loss, config=actor)

    # 1. one train step: verl's ppo_loss + coef * BT
    before = weights(engine)
    with engine.train_mode():
        out = engine.train_batch(meta(v1_batch(outputs, processor, kwargs)), loss_function=loss_fn)
    res["metrics"] = {k: v for k, v in out["metrics"].items() if k.startswith("agentrm/") or k == "grad_norm"}
    res["metric_keys"] = sorted(out["metrics"])
    after = weights(engine)
    res["changed"] = sorted(n for n in after if not torch.equal(after[n], before[n]))

    # 2. zero advantages: the head moves only through the BT term (coef > 0), not at all with coef = 0
    deltas = []
    for coef in (0.5, 0.0):
        engine.aux = engine.aux.model_copy(update={"coef": coef})
        data = meta(v1_batch(outputs, processor, kwargs))
        data["advantages"] = torch.nested.as_nested_tensor([t * 0 for t in data["advantages"].unbind()],
                                                           layout=torch.jagged)
        w0 = weights(engine)["agentrm_head.net.weight"]
        with engine.train_mode():
            engine.train_batch(data, loss_function=loss_fn)
        deltas.append(float((weights(engine)["agentrm_head.net.weight"] - w0).abs().max()))
    engine.aux = engine.aux.model_copy(update={"coef": 0.5})
    res["head_delta_by_coef"] = deltas

    # 3. the old-log-prob pass (forward only) returns the head scores of answer rows
    data = meta(v1_batch(outputs, processor, kwargs), compute_loss=False)
    with engine.eval_mode():
        inf = engine.infer_batch(data, loss_function=None)
    res["score_rows"] = [t.tolist() for t in inf["model_output"]["agentrm_scores"].unbind()]

    # 4. pointwise rows: BT against the partner's stop-gradient score that the trainer joined in
    (tmp / "point").mkdir()
    p_out, _, p_proc, p_kwargs = scripted_rollout(prepared_dir, items_jsonl, tmp / "point", turns=[TOOL1, POINT_ANSWER],
                                                  pointwise=True)
    engine.rm_mode = "pointwise"  # what a pointwise-prepared dir sets; same weights
    for name, partner in (("found", [0.1, 0.2, 0.3, 0.4]), ("missing", [float("nan")] * 4)):
        data = meta(v1_batch(p_out, p_proc, p_kwargs, partner=partner))
        with engine.train_mode():
            out = engine.train_batch(data, loss_function=loss_fn)
        res[f"pointwise_{name}"] = {k: v for k, v in out["metrics"].items() if k.startswith("agentrm/")}
    engine.rm_mode = "pairwise"

    # 5. the weights verl syncs to vLLM: the model's, not the head's
    params, _ = engine.get_per_tensor_param()
    res["synced_names"] = [name for name, _ in params]

    # 6. verl checkpoint -> agentrm checkpoint -> agentrm.load
    ckpts = tmp / "checkpoints"
    engine.save_checkpoint(str(ckpts / "global_step_2" / "actor"), global_step=2)
    (ckpts / "latest_checkpointed_iteration.txt").write_text("2")
    final = export_checkpoint(latest_actor_dir(ckpts), prepared_dir, tmp / "final")
    rm = agentrm.load(str(final), device="cpu", dtype="float32")
    live = weights(engine)
    res["export_head_equal"] = torch.equal(rm.head.net.weight, live["agentrm_head.net.weight"])
    res["export_lm_head_equal"] = torch.equal(rm.model.lm_head.weight, live["lm_head.weight"])
    res["export_dims"] = rm.settings.dims
    return res


if __name__ == "__main__":
    result = main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
