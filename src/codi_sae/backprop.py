"""One training step of a ``SAEBank``, forward and backward by hand, in reused buffers.

For each member, on a mini-batch x of b rows (M the 0/1 mask of the kept latents):
``pre = (x - c) We + be`` with ``c = bd`` under the ``mean`` decoder bias (else 0),
``z = act(pre) * M`` (``act``: identity for the signed TopK, ReLU for ``relu_topk``: M keeps
only positive entries there, so ``z = pre * M`` either way), ``r = z Wd + bd``,
loss = mean((r - x)^2) over b x H. With ``g = 2 (r - x) / (b H)``: ``dWd = z^T g``,
``dpre = (g Wd^T) * M``, ``dbe = sum_rows dpre``, ``dWe = x^T dpre - c dbe^T`` and
``dbd = sum_rows g - We dbe`` (the last terms only when c = bd).

AuxK (weight a, when a > 0 and some latent is dead): ``z_a`` keeps the ``k_a`` largest
activations among the dead latents (mask ``M_a``), ``e_hat = z_a Wd``, and the loss adds
``a * s * mean((e_hat - (x - r))^2)``, the residual held fixed, with ``s = min(dead / k_aux,
1)``. With ``g_a = 2 a s (e_hat - x + r) / (b H)``: ``dWd += z_a^T g_a``, ``dpre += (g_a Wd^T)
* M_a``.

``every_step`` decoder norm: before Adam, each row of ``dWd`` (one latent's direction) loses
its component along that row of ``Wd``; after it, the rows are scaled back to unit norm.

These are autograd's gradients (tested); every intermediate lives in a buffer kept from step
to step, where autograd would allocate each one afresh and add passes for its graph.
"""

from __future__ import annotations

import torch

from .optim import Adam
from .sae import SAEBank, topk_mask


class BankStep:
    """Adam steps on every member of ``bank`` at once, one mini-batch per call."""

    def __init__(self, bank: SAEBank, lr: float):
        self.bank = bank
        self.recipe = bank.recipe
        self.params = [bank.enc_wt, bank.enc_b, bank.dec_wt, bank.dec_b]
        self.grads = [torch.empty_like(p) for p in self.params]
        self.opt = Adam(self.params, lr=lr)
        self._buffers: dict[int, dict[str, torch.Tensor]] = {}
        n, H, d = bank.enc_wt.shape
        self.k_aux = self.recipe.k_aux or H // 2
        self.rows_since_fired = torch.zeros(n, d, device=bank.enc_wt.device)

    def _buffers_for(self, b: int) -> dict[str, torch.Tensor]:
        """Work buffers for a batch of ``b`` rows (an epoch has at most two batch sizes)."""
        if b not in self._buffers:
            n, H, d = self.bank.enc_wt.shape
            empty = lambda size: torch.empty(n, b, size, device=self.bank.enc_wt.device)  # noqa: E731
            self._buffers[b] = {
                "x": empty(H), "pre": empty(d), "mag": empty(d), "mask": empty(d), "z": empty(d),
                "err": empty(H), "dpre": empty(d),
            }
            if self.recipe.auxk_coef > 0:
                self._buffers[b].update({"mask_a": empty(d), "z_a": empty(d), "e_hat": empty(H)})
        return self._buffers[b]

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """One step on rows ``rows`` of ``x`` [n, N, H]; returns each member's MSE [n]."""
        t = self._buffers_for(len(rows))
        bank, recipe = self.bank, self.recipe
        we, be, wd, bd = self.params
        g_we, g_be, g_wd, g_bd = self.grads
        b, H = len(rows), x.shape[2]
        xb = torch.index_select(x, 1, rows, out=t["x"])
        torch.baddbmm(bank.encoder_bias(), xb, we, out=t["pre"])
        if recipe.activation == "signed_topk":
            mag = torch.abs(t["pre"], out=t["mag"])
            mask = topk_mask(mag, bank.k, out=t["mask"])
        else:
            mag = torch.clamp_min(t["pre"], 0, out=t["mag"])
            mask = topk_mask(mag, bank.k, out=t["mask"], positive=True)
        z = torch.mul(t["pre"], mask, out=t["z"])
        g = torch.baddbmm(bd.unsqueeze(1), z, wd, out=t["err"]).sub_(xb)  # r - x, then scaled to g
        loss = torch.linalg.vector_norm(g.view(g.shape[0], -1), dim=1).pow_(2).div_(b * H)
        aux = self._auxk(t, mag, mask, g, b * H) if recipe.auxk_coef > 0 else None
        g.mul_(2.0 / (b * H))
        torch.sum(g, 1, out=g_bd)
        torch.bmm(z.transpose(1, 2), g, out=g_wd)
        dpre = torch.bmm(g, wd.transpose(1, 2), out=t["dpre"]).mul_(mask)
        if aux is not None:  # AuxK's gradients, from g_a (in t["e_hat"])
            g_a, z_a, mask_a = aux
            g_wd.baddbmm_(z_a.transpose(1, 2), g_a)
            dpre.add_(torch.bmm(g_a, wd.transpose(1, 2), out=t["mag"]).mul_(mask_a))
        torch.sum(dpre, 1, out=g_be)
        torch.bmm(xb.transpose(1, 2), dpre, out=g_we)
        if bank.pre_bias:
            g_we.baddbmm_(bd.unsqueeze(2), g_be.unsqueeze(1), alpha=-1)
            g_bd.sub_(torch.bmm(we, g_be.unsqueeze(2)).squeeze(2))
        if recipe.decoder_norm == "every_step":
            radial = torch.linalg.vecdot(g_wd, wd, dim=-1)
            g_wd.addcmul_(radial.unsqueeze(-1), wd, value=-1)
        self.opt.step(self.grads)
        if recipe.decoder_norm == "every_step":
            wd.div_(torch.linalg.vector_norm(wd, dim=-1, keepdim=True))
        return loss

    def _auxk(self, t: dict, mag: torch.Tensor, mask: torch.Tensor, g: torch.Tensor, elements: int):
        """Track dead latents; when some are, the AuxK gradient ``g_a``, ``z_a`` and ``M_a`` (else None).

        ``g`` holds r - x here. ``mag`` (the activation's magnitudes) is overwritten.
        """
        recipe, since = self.recipe, self.rows_since_fired
        since.add_(mask.shape[1]).mul_(mask.amax(1) == 0)
        dead = since >= recipe.dead_after_rows
        n_dead = dead.sum(1)
        if not bool(n_dead.any()):
            return None
        k_a = min(self.k_aux, int(n_dead.max()))
        mag.mul_(dead.unsqueeze(1))  # only dead latents compete
        mask_a = topk_mask(mag, k_a, out=t["mask_a"], positive=True)
        z_a = torch.mul(t["pre"], mask_a, out=t["z_a"])
        e_hat = torch.bmm(z_a, self.bank.dec_wt, out=t["e_hat"]).add_(g)  # e_hat - (x - r)
        scale = (n_dead / self.k_aux).clamp_(max=1.0) * (2.0 * recipe.auxk_coef / elements)
        return e_hat.mul_(scale[:, None, None]), z_a, mask_a
