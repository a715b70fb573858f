"""A CPU platform for verl (test-only shim: verl 0.9.1 ships CUDA/NPU/ROCm platforms, none for CPU).

verl's FSDP engine asks its platform for the device name, the device module (memory stats, empty_cache) and the
collective backend; on CPU these are "cpu", a tiny stand-in module and gloo. Install it before building an engine.
"""

from __future__ import annotations

import os
import types
from typing import Any

import torch
from verl.plugin.platform.platform_base import PlatformBase


def _device_module() -> types.SimpleNamespace:
    zero = lambda *a, **k: 0  # noqa: E731
    return types.SimpleNamespace(
        is_available=lambda: True, current_device=lambda: "cpu", device_count=lambda: 1, set_device=lambda *_: None,
        synchronize=lambda *_: None, empty_cache=lambda: None, manual_seed=torch.manual_seed,
        manual_seed_all=torch.manual_seed, max_memory_allocated=zero, max_memory_reserved=zero,
        memory_allocated=zero, memory_reserved=zero, reset_peak_memory_stats=lambda *_: None,
        mem_get_info=lambda *_: (0, 0), get_device_name=lambda *_: "cpu", is_initialized=lambda: True,
    )


class CpuPlatform(PlatformBase):
    _module = _device_module()

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> Any:
        return self._module

    def is_available(self) -> bool:
        return True

    def current_device(self) -> Any:
        return "cpu"  # verl moves tensors with .to(get_device_id()); an int would mean an accelerator

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        pass

    def synchronize(self, device_index: int | None = None) -> None:
        pass

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def communication_backend_name(self) -> str:
        return "gloo"

    # the rest is not used by an FSDP step on CPU; answered inertly
    def cudart(self) -> Any:
        return None

    def empty_cache(self) -> None:
        pass

    def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
        return (None, None)

    def is_ipc_supported(self) -> bool:
        return False

    def nvtx_range(self, msg: str) -> Any:
        import contextlib

        return contextlib.nullcontext()

    def profiler_start(self) -> None:
        pass

    def profiler_stop(self) -> None:
        pass

    def ray_noset_envvars(self) -> list[str]:
        return []

    def ray_resource_name(self) -> str:
        return "CPU"

    def set_allocator_settings(self, settings: str) -> None:
        pass

    def visible_devices_envvar(self) -> str:
        return "CPU_VISIBLE_DEVICES"


def install_cpu_platform() -> None:
    """Make verl use the CPU platform and start a 1-process gloo group (idempotent)."""
    from verl.plugin.platform.platform_manager import set_platform

    set_platform(CpuPlatform())
    if not torch.distributed.is_initialized():
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29533")
        torch.distributed.init_process_group("gloo", rank=0, world_size=1)
