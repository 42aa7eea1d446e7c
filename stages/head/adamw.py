"""AdamW on the head's one weight tensor, stepped as torch.optim.AdamW(fused=True) steps it.

Constructing any torch.optim optimizer first imports torch._dynamo, seconds of every train
process, which needs nothing else of it. The step itself is
one call of the very fused kernel torch.optim.AdamW(fused=True) calls, so this class keeps
its state (the two moments and a float step count) and makes that call; tests/head/test_adamw.py
checks that both give the same weights, bit for bit.
"""
from __future__ import annotations

import torch


class AdamW:
    def __init__(self, weights: torch.Tensor, lr: float, weight_decay: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.weights, self.lr, self.weight_decay, self.betas, self.eps = weights, lr, weight_decay, betas, eps
        self.exp_avg, self.exp_avg_sq = torch.zeros_like(weights), torch.zeros_like(weights)
        self.steps = torch.zeros((), dtype=torch.float32, device=weights.device)

    @torch.no_grad()
    def step(self) -> None:
        """One update from weights.grad (torch.optim's defaults: no amsgrad, no maximize)."""
        self.steps += 1
        torch._fused_adamw_([self.weights], [self.weights.grad], [self.exp_avg], [self.exp_avg_sq],
                            [], [self.steps], lr=self.lr, beta1=self.betas[0], beta2=self.betas[1],
                            weight_decay=self.weight_decay, eps=self.eps, amsgrad=False,
                            maximize=False)
