"""Adam, as ``torch.optim.Adam(fused=True)`` computes it, without its start-up cost.

Building a ``torch.optim.Adam`` imports ``torch._dynamo``: about 2 s of every training job's
start-up here, longer than a sweep config's training. This calls the same fused kernel
(``torch._fused_adam_``, one pass over each tensor, CPU and CUDA) directly.
"""

from __future__ import annotations

import torch


class Adam:
    def __init__(self, params, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params = list(params)
        self.lr, self.betas, self.eps = lr, betas, eps
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.steps = [torch.zeros((), device=p.device) for p in self.params]

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor]) -> None:
        """Update each parameter from its gradient in ``grads``."""
        torch._foreach_add_(self.steps, 1)
        torch._fused_adam_(
            self.params, grads, self.exp_avg, self.exp_avg_sq, [], self.steps,
            lr=self.lr, beta1=self.betas[0], beta2=self.betas[1], weight_decay=0.0, eps=self.eps,
            amsgrad=False, maximize=False,
        )
