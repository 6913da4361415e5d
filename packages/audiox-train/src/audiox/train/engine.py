"""One training engine for one CPU process and for many GPUs: plain PyTorch, or DeepSpeed ZeRO.

- One process, no DeepSpeed requested: ``torch.optim.AdamW`` + ``LambdaLR``, gradient accumulation and
  clipping done here. This is what tests and the ``mini`` model use.
- Launched with several processes (``torchrun`` / ``deepspeed`` set ``WORLD_SIZE``), or ``deepspeed.enabled``:
  ``deepspeed.initialize`` with ZeRO stage 1-3 (bf16 on GPU, gloo on CPU), the same optimiser and schedule
  objects, and DeepSpeed doing accumulation, clipping and the all-reduce/partitioning.

Callers use the same four calls either way: ``backward(loss)``, ``step() -> bool`` (True when an optimiser
step happened), ``lr``, and ``save_extra`` / ``load_extra`` for checkpoints. Model code never sees any of this.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

import time

import torch
import torch.distributed as dist
from torch import nn

from audiox.train.config import DeepSpeedConfig, OptimConfig, ScheduleConfig
from audiox.train.schedules import build_scheduler

__all__ = ["Engine", "world_info", "resolve_device", "barrier"]


def world_info() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from the launcher's environment."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = f"cuda:{world_info()[1]}" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)
        torch.set_float32_matmul_precision("high")  # TF32 matmuls on Ampere and later; fp32 everywhere else
    return device


def time_up(start: float, max_minutes: float) -> bool:
    """Whether a run's wall-clock budget (``max_minutes`` since ``start``; 0 = none) is spent.

    Rank 0's clock decides for every process, so all ranks stop after the same step (no collective hangs).
    """
    if max_minutes <= 0:
        return False
    flag = torch.tensor([float(time.perf_counter() - start >= 60.0 * max_minutes)])
    if dist.is_available() and dist.is_initialized():
        if dist.get_backend() == "nccl":
            flag = flag.cuda()
        dist.broadcast(flag, 0)
    return bool(flag.item())


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


class Engine:
    def __init__(
        self,
        model: nn.Module,
        named_params: Iterable[tuple[str, nn.Parameter]],
        optim: OptimConfig,
        schedule: ScheduleConfig,
        ds: DeepSpeedConfig,
        *,
        micro_batch_size: int,
        device: torch.device,
    ) -> None:
        self.model = model
        self.named_params = list(named_params)
        self.optim_cfg = optim
        self.device = device
        self.rank, self.local_rank, self.world_size = world_info()
        self.use_deepspeed = ds.enabled or self.world_size > 1
        params = [p for _, p in self.named_params]
        optimizer = torch.optim.AdamW(params, lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay, eps=optim.eps)
        self.micro = 0
        if self.use_deepspeed:
            import deepspeed

            backend = "nccl" if device.type == "cuda" else "gloo"
            if not (dist.is_available() and dist.is_initialized()):
                deepspeed.init_distributed(dist_backend=backend)
            config: dict[str, Any] = {
                "train_micro_batch_size_per_gpu": micro_batch_size,
                "gradient_accumulation_steps": optim.grad_accum,
                "gradient_clipping": optim.grad_clip if optim.grad_clip > 0 else 0.0,
                "zero_optimization": {"stage": ds.zero_stage},
                "zero_allow_untested_optimizer": True,
                "bf16": {"enabled": bool(ds.bf16 and device.type == "cuda")},
                "steps_per_print": 10**9,
                "wall_clock_breakdown": False,
            }
            if ds.activation_checkpointing:
                config["activation_checkpointing"] = {"partition_activations": False, "contiguous_memory_optimization": False}
            self.ds_engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
                model=model,
                model_parameters=params,
                optimizer=optimizer,
                lr_scheduler=lambda opt: build_scheduler(opt, schedule),
                config=config,
            )
            self.module = self.ds_engine.module
        else:
            self.ds_engine = None
            self.optimizer = optimizer
            self.scheduler = build_scheduler(optimizer, schedule)
            self.module = model

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def backward(self, loss: torch.Tensor) -> None:
        if self.ds_engine is not None:
            self.ds_engine.backward(loss)
        else:
            (loss / self.optim_cfg.grad_accum).backward()

    def step(self) -> bool:
        """Advance one micro-batch; returns True when the optimiser stepped (accumulation boundary)."""
        self.micro += 1
        if self.ds_engine is not None:
            boundary = self.ds_engine.is_gradient_accumulation_boundary()
            self.ds_engine.step()
            return bool(boundary)
        if self.micro % self.optim_cfg.grad_accum:
            return False
        if self.optim_cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_([p for _, p in self.named_params], self.optim_cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return True

    # Checkpoint state ----------------------------------------------------------------------------
    def optimizer_state(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state)

    def save_extra(self, folder: Path) -> None:
        """DeepSpeed's own (partitioned) optimiser state, written into the checkpoint folder by every rank."""
        if self.ds_engine is not None:
            self.ds_engine.save_checkpoint(str(folder), tag="deepspeed", client_state={})

    def load_extra(self, folder: Path) -> None:
        if self.ds_engine is not None:
            self.ds_engine.load_checkpoint(str(folder), tag="deepspeed", load_module_strict=False)

    def close(self) -> None:
        if dist.is_available() and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
