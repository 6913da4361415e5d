import json

import pytest
import torch

from audiox.core import flow
from audiox.distill.config import DistillConfig, get_distill_config


def test_paper_defaults_and_table_vi_variants(tmp_path):
    cfg = get_distill_config("paper")
    assert (cfg.dmd.steps, cfg.dmd.guidance_scale, cfg.gan.num_blocks, cfg.gan.t_max, cfg.gan.weight) == (4, 6.0, 6, 0.2, 1.0)
    assert (cfg.optim.lr, cfg.optim.betas, cfg.optim.weight_decay) == (1e-5, (0.9, 0.999), 1e-3)
    assert cfg.schedule.kind == "inverse" and (cfg.dmd.student_updates, cfg.dmd.fake_updates) == (5, 1)
    cfg = get_distill_config("paper", ["dmd.times=[0.9,0.6,0.3]", "dmd.step_probs=[0.1,0.2,0.3,0.4]",
                                       "gan.enabled=false", "gan.num_blocks=3"])
    assert cfg.dmd.step_probs == (0.1, 0.2, 0.3, 0.4) and not cfg.gan.enabled
    torch.testing.assert_close(flow.few_step_grid(cfg.dmd.times, cfg.dmd.steps), torch.tensor([1.0, 0.9, 0.6, 0.3, 0.0]))
    path = tmp_path / "c.json"
    path.write_text(cfg.to_json())
    assert DistillConfig.from_dict(json.loads(path.read_text())) == get_distill_config(path)


@pytest.mark.parametrize("bad", ["dmd.step_probs=[1,1]", "dmd.times=[0.5]", "dmd.tau_min=0.99", "gan.t_max=0",
                                 "optim.grad_accum=2", "dmd.unknown=1"])
def test_bad_values_are_rejected(bad):
    with pytest.raises(ValueError):
        get_distill_config("debug", [bad])
