"""Why a pixel loss blurs and a GAN does not: two tiny generators trained from scratch on the same ambiguous data.

Every input has two equally likely real outputs (an all-black or an all-white patch; or a checker texture in one of
its two phases). A generator trained with a pixel loss can only hedge: L2's (MSE's, PSNR's) best answer is the
average, a gray that is never real. (L1's best answer is the median, and with an exact 50/50 split every value between
black and white is equally good, so an L1 generator drifts to an arbitrary gray or colour: no real answer either.) A
generator trained against a discriminator must look real, so it picks one of the versions per sample (its noise input
chooses which), and uses both.

`run` is a generator of `LessonReport`s (a UI streams them; closing it keeps the last one); `final_stats` turns a
report into numbers. Everything is seeded and runs on the CPU.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from models.gan_lesson_arch import PatchDiscriminator, PatchGenerator

VARIANTS = ("black-white", "texture")
PIXEL_LOSSES = ("l1", "l2")
DEFAULT_STEPS = 400  # enough for every seed tried (tests: 0, 1, 2) to settle, in both variants
BINS = 20  # histogram bins over [0, 1]: 0.05 wide, so "within 0.1 of a value" is whole bins
NEAR = 0.1  # "near" a value: within this distance
_NOISE = 4  # size of the generators' noise input
_BATCH = {"black-white": 64, "texture": 32}  # inputs per step (a texture input has 16 cells, each judged)
_HIDDEN = 64  # hidden units of every network
_LR = 2e-3  # Adam's learning rate, decayed linearly to 0 over the second half (as pix2pix and CycleGAN do)
_R1 = 0.1  # weight of the R1 penalty on the critic's slope at real patches
_EVAL = 256  # fixed inputs (and noises) the statistics and histograms are measured on
_SHOWN = 6  # of which the first few are shown as pictures
_CELL = 4  # texture variant: a low-res input pixel -> a 4 x 4 cell of the 16 x 16 patch


@dataclass
class Samples:
    """Inputs with their two real versions, cell by cell; `target` is the version drawn for training."""

    condition: torch.Tensor  # (N, cells, condition size): each cell's input
    versions: torch.Tensor  # (2, N, cells, cell pixels): the two real outputs for each input
    target: torch.Tensor  # (N, cells, cell pixels): one of them, each equally likely
    second_target: torch.Tensor  # another draw for the same input, independent of `target`
    ambiguous: torch.Tensor  # (N, cells, cell pixels) bool: where the two versions differ (what the lesson is about)


def layout(variant: str) -> tuple[int, int]:
    """(cells a side, cell side in pixels) of the variant's patch."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}; got {variant!r}")
    return (1, 8) if variant == "black-white" else (4, _CELL)


def sample(variant: str, count: int, rng: torch.Generator) -> Samples:
    """`count` random inputs of the variant, each with both of its real versions and one of them drawn."""
    grid, cell = layout(variant)
    if variant == "black-white":
        # The input is an arbitrary code; whatever it is, the real patch is all black or all white.
        condition = torch.randn(count, 1, 8, generator=rng)
        versions = torch.stack([torch.zeros(count, 1, cell * cell), torch.ones(count, 1, cell * cell)])
    else:
        condition, versions = _texture_samples(count, grid, rng)
    picks = torch.randint(0, 2, (2, count, 1, 1), generator=rng)
    target, second = (torch.where(pick == 0, versions[0], versions[1]) for pick in picks)
    return Samples(condition, versions, target, second, versions[0] != versions[1])


def _texture_samples(count: int, grid: int, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Super-resolution in miniature: a 16 x 16 patch of black, white and checker-textured 4 x 4 cells, seen only as
    its 4 x 4 low-res average (given at full size, each low-res pixel repeated over its cell, as pix2pix feeds its
    discriminator the input image). A textured cell averages to 0.5 in either checker phase, so the input cannot tell
    the two phases apart."""
    kind = torch.randint(0, 4, (count, grid * grid, 1), generator=rng)  # 0 black, 1 white, 2-3 textured (half)
    rows, cols = torch.meshgrid(torch.arange(_CELL), torch.arange(_CELL), indexing="ij")
    checker = ((rows // 2 + cols // 2) % 2).float().flatten()  # 2 x 2 pixel squares, the same phase in every cell
    flat = (kind == 1).float().expand(-1, -1, _CELL * _CELL)
    versions = torch.stack([torch.where(kind >= 2, pattern, flat) for pattern in (checker, 1 - checker)])
    return versions[0].mean(2, keepdim=True).expand(-1, -1, _CELL * _CELL), versions


def to_images(cells: torch.Tensor, variant: str) -> torch.Tensor:
    """(..., cells, cell pixels) -> (..., side, side): the cells put back in their places in the patch."""
    grid, cell = layout(variant)
    lead = cells.shape[:-2]
    image = cells.reshape(*lead, grid, grid, cell, cell).transpose(-3, -2)
    return image.reshape(*lead, grid * cell, grid * cell)


@dataclass
class LessonReport:
    """One progress report of `run`: losses, pictures of both generators' outputs and histograms of their values."""

    variant: str
    step: int  # training steps done
    steps: int  # steps planned
    pixel_loss_name: str  # "L1" or "L2"
    pixel_loss: float  # the pixel-loss generator's training loss (mean over the batch) at this step
    gan_g_loss: float  # the GAN generator's (non-saturating) loss
    gan_d_loss: float  # the discriminator's loss (real + fake + R1 penalty)
    side: int  # patch side in pixels
    conditions: np.ndarray  # (shown, cells, condition size) float32: the fixed inputs shown
    pixel_outputs: np.ndarray  # (shown, side, side) uint8: the pixel-loss generator's outputs for them
    gan_outputs: np.ndarray  # (shown, side, side) uint8: the GAN generator's outputs for them
    real_versions: np.ndarray  # (2, shown, side, side) uint8: the two real versions for each shown input
    bin_edges: np.ndarray  # (BINS + 1,): the histograms' bins over [0, 1]
    pixel_histogram: np.ndarray  # (BINS,) int: the pixel-loss outputs' values on the ambiguous pixels of _EVAL inputs
    gan_histogram: np.ndarray  # (BINS,) int: the same for the GAN generator
    stats: dict  # `final_stats`'s numbers for this report
    history: list[tuple[int, float, float, float]] = field(default_factory=list)  # (step, pixel, G, D) per report
    seconds: float = 0.0  # since `run` started
    done: bool = False  # the last report (steps reached)


def run(variant: str = "black-white", steps: int = DEFAULT_STEPS, seed: int = 0, report_every: int = 100,
        pixel_loss: str = "l2") -> Iterator[LessonReport]:
    """Train a pixel-loss generator and a GAN generator (with its conditional discriminator) side by side on the
    same batches, and yield a `LessonReport` at step 0, every `report_every` steps and at the end (`done`).

    `pixel_loss` "l2" (MSE, default: what PSNR rewards, whose answer is the gray average) or "l1". The GAN uses
    standard stabilisers: the non-saturating generator loss, Adam with beta1 = 0.5 and a learning rate decaying to 0,
    noise input to the generator, an R1 penalty (the critic must be flat at real patches, so it cannot turn
    arbitrarily sharp and send the generator round in circles) and packing (PacGAN: the critic judges two answers for
    the same input at once; real pairs sometimes differ, a collapsed generator's never do, so it must use both
    versions). Closing the generator early stops training; the last report received is the result. The same seed
    gives the same numbers (everything runs on the CPU, seeded locally; the caller's random state is untouched).
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}; got {variant!r}")
    if pixel_loss not in PIXEL_LOSSES:
        raise ValueError(f"pixel_loss must be one of {', '.join(PIXEL_LOSSES)}; got {pixel_loss!r}")
    if steps < 0:
        raise ValueError(f"steps must be 0 or more; got {steps}")
    started = time.perf_counter()
    rng = torch.Generator().manual_seed(seed)
    evaluation = sample(variant, _EVAL, rng)
    eval_noise = torch.randn(_EVAL, _NOISE, generator=rng)
    condition_size, pixels = evaluation.condition.shape[2], evaluation.target.shape[2]
    # Seeded weights without touching the caller's random state; normal tensors even under the caller's inference_mode.
    with torch.random.fork_rng(devices=[]), torch.inference_mode(False):
        torch.manual_seed(seed)
        pixel_net = PatchGenerator(condition_size, _NOISE, pixels, _HIDDEN)
        gan_net = PatchGenerator(condition_size, _NOISE, pixels, _HIDDEN)
        critic = PatchDiscriminator(condition_size, pixels, _HIDDEN, answers=2)
    pixel_opt = torch.optim.Adam(pixel_net.parameters(), lr=_LR, foreach=True)
    gan_opt = torch.optim.Adam(gan_net.parameters(), lr=_LR, betas=(0.5, 0.999), foreach=True)
    critic_opt = torch.optim.Adam(critic.parameters(), lr=_LR, betas=(0.5, 0.999), foreach=True)
    distance = F.l1_loss if pixel_loss == "l1" else F.mse_loss
    history: list[tuple[int, float, float, float]] = []
    losses, step, batch = (float("nan"),) * 3, 0, _BATCH[variant]
    for report_step in sorted({*range(0, steps, max(report_every, 1)), steps}):
        with _one_thread():
            while step < report_step:
                for optimizer in (pixel_opt, gan_opt, critic_opt):
                    for group in optimizer.param_groups:
                        group["lr"] = _LR * min(1.0, 2.0 * (1.0 - step / steps))
                with torch.inference_mode(False), torch.enable_grad():
                    losses = _train_step(sample(variant, batch, rng), torch.randn(2, batch, _NOISE, generator=rng),
                                         pixel_net, gan_net, critic, pixel_opt, gan_opt, critic_opt, distance)
                step += 1
            history.append((step, *losses))
            report = _report(variant, step, steps, pixel_loss, losses, pixel_net, gan_net, evaluation, eval_noise,
                             list(history), time.perf_counter() - started)
        yield report  # outside every context above: the caller's settings stand between reports


@contextlib.contextmanager
def _one_thread():
    """These matrices are tiny: one thread is fastest, and several spin-wait on a busy machine (15 times slower with
    two threads on two shared cores). Set for each stretch of work, restored before every report."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train_step(batch: Samples, noise, pixel_net, gan_net, critic, pixel_opt, gan_opt, critic_opt, distance):
    """One step for each network on the same batch (noise: two draws, (2, N, Z)) -> (pixel loss, G loss, D loss)."""
    pixel_loss = distance(pixel_net(batch.condition, noise[0]), batch.target)
    pixel_opt.zero_grad()
    pixel_loss.backward()
    pixel_opt.step()

    # The critic sees pairs: two real draws for the same input, or two generated answers (two noises) for it.
    condition = batch.condition
    fakes = (gan_net(condition, noise[0]), gan_net(condition, noise[1]))
    reals = (batch.target.clone().requires_grad_(True), batch.second_target.clone().requires_grad_(True))
    real_logits, fake_logits = critic(condition, *reals), critic(condition, *(fake.detach() for fake in fakes))
    d_loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()  # -log D(real) - log(1 - D(fake))
    slopes = torch.autograd.grad(real_logits.sum(), reals, create_graph=True)
    d_loss = d_loss + _R1 / 2 * sum(slope.pow(2).sum(2).mean() for slope in slopes)  # R1 (Mescheder et al. 2018)
    critic_opt.zero_grad()
    d_loss.backward()
    critic_opt.step()

    # Non-saturating loss: maximise log D(fake) (strong gradients while the critic is winning).
    g_loss = F.softplus(-critic(condition, *fakes)).mean()
    gan_opt.zero_grad()
    g_loss.backward()
    gan_opt.step()
    return pixel_loss.item(), g_loss.item(), d_loss.item()


def _report(variant, step, steps, pixel_loss, losses, pixel_net, gan_net, evaluation: Samples, eval_noise,
            history, seconds) -> LessonReport:
    grid, cell = layout(variant)
    with torch.no_grad():
        outputs = {"pixel": pixel_net(evaluation.condition, eval_noise),
                   "gan": gan_net(evaluation.condition, eval_noise)}
    edges = np.linspace(0.0, 1.0, BINS + 1)
    histograms = {name: np.histogram(out[evaluation.ambiguous].numpy(), edges)[0] for name, out in outputs.items()}
    stats = {name.upper() if name == "gan" else pixel_loss.upper(): _stats(out, evaluation)
             for name, out in outputs.items()}
    stats["real"] = _stats(evaluation.target, evaluation)

    def pictures(values: torch.Tensor) -> np.ndarray:
        return (to_images(values[..., :_SHOWN, :, :], variant) * 255).round().to(torch.uint8).numpy()

    return LessonReport(
        variant, step, steps, pixel_loss.upper(), *losses, side=grid * cell,
        conditions=evaluation.condition[:_SHOWN].numpy().astype(np.float32),
        pixel_outputs=pictures(outputs["pixel"]), gan_outputs=pictures(outputs["gan"]),
        real_versions=pictures(evaluation.versions), bin_edges=edges, pixel_histogram=histograms["pixel"],
        gan_histogram=histograms["gan"], stats=stats, history=history, seconds=seconds, done=step == steps)


def _stats(outputs: torch.Tensor, evaluation: Samples) -> dict:
    """Numbers for one generator's outputs on the evaluation inputs, measured on the ambiguous pixels."""
    outputs, versions = outputs.flatten(1), evaluation.versions.flatten(2)
    values = outputs[evaluation.ambiguous.flatten(1)]
    mask = evaluation.ambiguous.flatten(1).float()
    count = mask.sum(1).clamp(min=1)
    mean = (outputs * mask).sum(1) / count
    contrast = ((((outputs - mean[:, None]) ** 2) * mask).sum(1) / count).sqrt()
    version_error = ((outputs[None] - versions).abs() * mask).sum(2) / count  # (2, N)
    target = evaluation.target.flatten(1)
    mse = F.mse_loss(outputs, target).item()
    certain = ~evaluation.ambiguous.flatten(1)
    return {
        "mean": values.mean().item(),
        "near_0": (values < NEAR).float().mean().item(),
        "near_1": (values > 1 - NEAR).float().mean().item(),
        "near_modes": ((values < NEAR) | (values > 1 - NEAR)).float().mean().item(),
        "near_half": ((values - 0.5).abs() < NEAR).float().mean().item(),
        "contrast": contrast.mean().item(),  # spread within a patch (the real textures': 0.5; a flat patch: 0)
        "nearest_is_a": (version_error[0] < version_error[1]).float().mean().item(),  # both versions used: about 0.5
        "nearest_version_error": version_error.min(0).values.mean().item(),  # 0: exactly one of the real versions
        # where the input decides the answer (the texture's flat cells): both generators should get it right
        "certain_error": (outputs - target).abs()[certain].mean().item() if certain.any() else 0.0,
        "mse": mse,  # against the drawn real version of each input, over the whole patch
        "psnr": 10 * float(np.log10(1.0 / max(mse, 1e-10))),  # capped at 100 dB (identical)
    }


def final_stats(report: LessonReport) -> dict:
    """Per generator (keyed "L1"/"L2" and "GAN", plus "real" for the data itself): mean output, the shares of
    outputs near 0, near 1, near either (within 0.1) and near 0.5, patch contrast, the error to the nearest real
    version, and MSE/PSNR against the drawn real targets (the pixel loss wins those; the GAN looks real)."""
    return {name: dict(values) for name, values in report.stats.items()}
