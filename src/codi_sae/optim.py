"""Adam, as ``torch.optim.Adam(fused=True)`` computes it, without its start-up cost.

Building a ``torch.optim.Adam`` imports ``torch._dynamo``: about 2 s of every training job's
start-up here, longer than a sweep config's training. This calls the same fused kernel
(``torch._fused_adam_``, one pass over each tensor, CPU and CUDA) directly. That kernel is
private: where this torch lacks it, or it takes other arguments or computes something else (a
one-step probe at construction tells), ``torch.optim.Adam`` does the work instead, unfused (its
fused path calls the same private kernel).
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


def _fused_step(params, grads, exp_avg, exp_avg_sq, steps, lr, betas, eps) -> None:
    torch._foreach_add_(steps, 1)
    torch._fused_adam_(
        params, grads, exp_avg, exp_avg_sq, [], steps,
        lr=lr, beta1=betas[0], beta2=betas[1], weight_decay=0.0, eps=eps, amsgrad=False, maximize=False,
    )


def _kernel_works(device: torch.device) -> bool:
    """Whether ``_fused_step`` runs here and moves a parameter by -lr on its first step, as Adam does."""
    zeros = lambda: [torch.zeros(2, device=device)]  # noqa: E731
    param = zeros()
    try:
        _fused_step(param, [torch.ones(2, device=device)], zeros(), zeros(), [torch.zeros((), device=device)],
                    lr=0.5, betas=(0.9, 0.999), eps=1e-8)
    except (AttributeError, TypeError, RuntimeError):
        return False
    return torch.allclose(param[0].cpu(), torch.full((2,), -0.5))


class Adam:
    def __init__(self, params, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params = list(params)
        self.lr, self.betas, self.eps = lr, betas, eps
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.steps = [torch.zeros((), device=p.device) for p in self.params]
        self.fallback = None
        if not _kernel_works(self.params[0].device):
            log.warning("torch %s has no usable torch._fused_adam_: using torch.optim.Adam, unfused",
                        torch.__version__)
            self.fallback = torch.optim.Adam(self.params, lr=lr, betas=betas, eps=eps, fused=False)

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor]) -> None:
        """Update each parameter from its gradient in ``grads``."""
        if self.fallback is None:
            _fused_step(self.params, grads, self.exp_avg, self.exp_avg_sq, self.steps, self.lr, self.betas, self.eps)
            return
        for p, g in zip(self.params, grads):
            p.grad = g
        self.fallback.step()
