"""Real-GPU check of the Triton kernels against the PyTorch reference (forward and backward); prints max errors."""
import os

import torch

from audiox.core.kernels import attention, gated_residual, modulated_norm

torch.manual_seed(0)
dev = "cuda"
for dt in (torch.float32, torch.bfloat16):
    for (b, h, lq, lk, d, masked) in [(2, 4, 250, 250, 64, False), (2, 4, 250, 676, 64, True), (1, 2, 77, 130, 32, True), (2, 16, 1024, 1024, 128, False)]:
        q, k, v = (torch.randn(b, h, n, d, device=dev, dtype=dt, requires_grad=True) for n in (lq, lk, lk))
        mask = (torch.rand(b, lk, device=dev) > 0.3) if masked else None
        outs = {}
        for be in ("torch", "triton"):
            o = attention(q, k, v, mask=mask, backend=be)
            g = torch.autograd.grad(o.float().square().sum(), (q, k, v))
            outs[be] = (o.float(), [x.float() for x in g])
        (o1, g1), (o2, g2) = outs["torch"], outs["triton"]
        err = [(o1 - o2).abs().max().item()] + [(a - c).abs().max().item() / (a.abs().max().item() + 1e-6) for a, c in zip(g1, g2)]
        print(f"attention {dt} b{b} h{h} lq{lq} lk{lk} d{d} mask={masked}: out max abs {err[0]:.2e}, grad rel {max(err[1:]):.2e}")
x = torch.randn(4, 250, 256, device=dev, requires_grad=True)
sh, sc, gt = (torch.randn(4, 256, device=dev, requires_grad=True) for _ in range(3))
for kind in ("layer", "rms"):
    r = []
    for be in ("reference", "triton"):
        os.environ["AUDIOX_KERNELS"] = be
        r.append(modulated_norm(x, sh, sc, kind=kind))
    print(f"modulated_norm {kind}: max abs {(r[0] - r[1]).abs().max().item():.2e}")
y = torch.randn_like(x)
r = []
for be in ("reference", "triton"):
    os.environ["AUDIOX_KERNELS"] = be
    r.append(gated_residual(x, y, gt))
print(f"gated_residual: max abs {(r[0] - r[1]).abs().max().item():.2e}")
