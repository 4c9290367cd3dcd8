"""The two tiny networks of the pixel-loss-versus-GAN lesson: a conditional generator and a conditional critic.

A patch is a grid of cells (one cell for the black/white variant, 4 x 4 cells for the texture). Both networks are
small MLPs applied to every cell with shared weights, like 1 x 1 convolutions on the low-res grid: the generator turns
a cell's input (plus the sample's noise) into the cell's pixels, and the discriminator judges each cell with its input
(a PatchGAN, as in pix2pix). That keeps the experiment tiny enough to train from scratch in seconds on a CPU.
"""
from __future__ import annotations

import torch
from torch import nn


class PatchGenerator(nn.Module):
    """(condition (N, cells, C), noise (N, Z)) -> pixels in [0, 1] (N, cells, cell pixels). The noise lets one input
    map to different outputs, so a generator can choose one real version per sample instead of a compromise; every
    cell of a sample sees the same noise, so they can agree on the choice."""

    def __init__(self, condition_size: int, noise_size: int, cell_pixels: int, hidden: int = 128):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(condition_size + noise_size, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, cell_pixels))

    def forward(self, condition: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        noise = noise[:, None, :].expand(-1, condition.shape[1], -1)
        return torch.sigmoid(self.body(torch.cat([condition, noise], dim=2)))


class PatchDiscriminator(nn.Module):
    """(condition (N, cells, C), answers: `answers` tensors (N, cells, cell pixels)) -> logits (N, cells), high for
    "real answers for this input".

    With two answers for the same input it judges them together (packing, PacGAN): two real draws differ half the
    time, while a generator that always gives the same answer (mode collapse) hands in identical pairs, which the
    critic can catch, so the generator is pushed to use every real version.
    """

    def __init__(self, condition_size: int, cell_pixels: int, hidden: int = 128, answers: int = 2):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(condition_size + answers * cell_pixels, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1))

    def forward(self, condition: torch.Tensor, *answers: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([condition, *answers], dim=2)).squeeze(2)
