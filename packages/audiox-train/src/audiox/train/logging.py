"""Progress bar, TensorBoard and (optionally) Weights & Biases, on the main process only."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

__all__ = ["RunLogger"]

log = logging.getLogger("audiox.train")


class _NullBar:
    def update(self, n: int = 1) -> None: ...

    def set_postfix(self, **kw: Any) -> None: ...

    def close(self) -> None: ...


class RunLogger:
    def __init__(self, run_dir: Path, cfg: Any, enabled: bool = True) -> None:
        self.enabled = enabled
        self.cfg = cfg
        self.tb = None
        self.wandb = None
        self.jsonl = None
        if not enabled:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "train_config.json").write_text(cfg.to_json() + "\n")
        self.jsonl = open(run_dir / "metrics.jsonl", "a")
        if cfg.log.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tensorboard"))
        if cfg.log.wandb:
            try:
                import wandb
            except ImportError:
                raise SystemExit('log.wandb=true needs Weights & Biases: pip install "audiox-train[wandb]"') from None
            if not os.environ.get("WANDB_API_KEY") and not os.environ.get("WANDB_MODE"):
                log.warning("log.wandb=true but WANDB_API_KEY is not set; wandb will run offline")
                os.environ["WANDB_MODE"] = "offline"
            self.wandb = wandb.init(project=cfg.log.wandb_project, config=json.loads(cfg.to_json()), dir=str(run_dir))

    def progress(self, total: int, initial: int = 0):
        if not (self.enabled and self.cfg.log.progress):
            return _NullBar()
        return tqdm(total=total, initial=initial, desc="train", dynamic_ncols=True)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        if self.jsonl is not None:
            self.jsonl.write(json.dumps({"step": step, **values}) + "\n")
            self.jsonl.flush()
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)
        if self.wandb is not None:
            self.wandb.log(values, step=step)
        if not self.cfg.log.progress:  # no progress bar to show them: a log line
            log.info("step %d: %s", step, " ".join(f"{k}={v:.4g}" for k, v in values.items()))

    def audio(self, step: int, paths: list[Path]) -> None:
        if self.enabled and paths:
            log.info("step %d: wrote samples %s", step, ", ".join(str(p) for p in paths))

    def close(self) -> None:
        if self.jsonl is not None:
            self.jsonl.close()
            self.jsonl = None
        if self.tb is not None:
            self.tb.flush()
            self.tb.close()
            self.tb = None
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None
