"""One training step of a ``SAEBank``, forward and backward by hand, in reused buffers.

For each member, on a mini-batch x of b rows (z = TopK(pre), M its 0/1 mask):
``pre = x We + be``, ``z = pre * M``, ``r = z Wd + bd``, loss = mean((r - x)^2) over b x H.
With ``g = 2 (r - x) / (b H)``: ``dbd = sum_rows g``, ``dWd = z^T g``, ``dpre = (g Wd^T) * M``,
``dbe = sum_rows dpre``, ``dWe = x^T dpre``. These are autograd's gradients (tested), with
five matmuls and no input gradient; every intermediate lives in a buffer kept from step to
step, where autograd would allocate each one afresh and add passes for its graph.
"""

from __future__ import annotations

import torch

from .optim import Adam
from .sae import SAEBank, topk_mask


class BankStep:
    """Adam steps on every member of ``bank`` at once, one mini-batch per call."""

    def __init__(self, bank: SAEBank, lr: float):
        self.bank = bank
        self.params = [bank.enc_wt, bank.enc_b, bank.dec_wt, bank.dec_b]
        self.grads = [torch.empty_like(p) for p in self.params]
        self.opt = Adam(self.params, lr=lr)
        self._buffers: dict[int, dict[str, torch.Tensor]] = {}

    def _buffers_for(self, b: int) -> dict[str, torch.Tensor]:
        """Work buffers for a batch of ``b`` rows (an epoch has at most two batch sizes)."""
        if b not in self._buffers:
            n, H, d = self.bank.enc_wt.shape
            empty = lambda size: torch.empty(n, b, size, device=self.bank.enc_wt.device)  # noqa: E731
            self._buffers[b] = {
                "x": empty(H), "pre": empty(d), "mag": empty(d), "mask": empty(d), "z": empty(d),
                "err": empty(H), "dpre": empty(d),
            }
        return self._buffers[b]

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """One step on rows ``rows`` of ``x`` [n, N, H]; returns the sum of the members' MSEs."""
        t = self._buffers_for(len(rows))
        we, be, wd, bd = self.params
        g_we, g_be, g_wd, g_bd = self.grads
        H = x.shape[2]
        xb = torch.index_select(x, 1, rows, out=t["x"])
        torch.baddbmm(be.unsqueeze(1), xb, we, out=t["pre"])
        mask = topk_mask(torch.abs(t["pre"], out=t["mag"]), self.bank.k, out=t["mask"])
        z = torch.mul(t["pre"], mask, out=t["z"])
        g = torch.baddbmm(bd.unsqueeze(1), z, wd, out=t["err"]).sub_(xb)  # r - x, then scaled to g
        flat = g.view(-1)
        loss = torch.dot(flat, flat) / (len(rows) * H)
        g.mul_(2.0 / (len(rows) * H))
        torch.sum(g, 1, out=g_bd)
        torch.bmm(z.transpose(1, 2), g, out=g_wd)
        dpre = torch.bmm(g, wd.transpose(1, 2), out=t["dpre"]).mul_(mask)
        torch.sum(dpre, 1, out=g_be)
        torch.bmm(xb.transpose(1, 2), dpre, out=g_we)
        self.opt.step(self.grads)
        return loss
