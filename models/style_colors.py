"""Colour preservation for style transfer: keep the content's colours while taking the style's texture.

Two ways, as the references do: recolour the style image before stylising (`match_colors`, for AdaIN and Gatys, which
take any style image), or keep only the stylised luminance (`keep_luminance_only`, for fast-style networks, whose
style is fixed in their weights).
"""
from __future__ import annotations

import numpy as np
from PIL import Image


def match_colors(source: np.ndarray, target: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Recolour `source` (the style image) so its RGB mean and channel correlations match `target` (the content).

    The reference's `coral()`: standardise each channel, map the source's channel correlation onto the target's with
    symmetric matrix square roots, then take the target's channel means and standard deviations. The correlations are
    averaged over pixels (the reference sums them plus an identity, which scales the result by sqrt(N_target/N_source)
    when the two images differ in size); `eps` regularises a grey image's singular correlation.
    """
    def standardised(rgb):
        flat = rgb.reshape(-1, 3).T.astype(np.float64) / 255.0
        mean, std = flat.mean(axis=1, keepdims=True), flat.std(axis=1, ddof=1, keepdims=True) + eps
        normal = (flat - mean) / std
        return normal, mean, std, normal @ normal.T / max(normal.shape[1] - 1, 1) + eps * np.eye(3)

    source_normal, _, _, source_corr = standardised(source)
    _, target_mean, target_std, target_corr = standardised(target)
    mapping = _sqrtm(target_corr) @ np.linalg.inv(_sqrtm(source_corr))
    recoloured = (mapping @ source_normal) * target_std + target_mean
    return np.clip(np.rint(recoloured.T.reshape(source.shape) * 255.0), 0, 255).astype(np.uint8)


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive (semi-)definite matrix, through its eigendecomposition."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def keep_luminance_only(stylised: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The stylised luminance with the content's chroma (YCbCr): colour preservation for a fixed-style network."""
    luma = np.asarray(Image.fromarray(stylised).convert("YCbCr"))[..., :1]
    chroma = np.asarray(Image.fromarray(content).resize(stylised.shape[1::-1]).convert("YCbCr"))[..., 1:]
    return np.asarray(Image.fromarray(np.concatenate([luma, chroma], axis=2), "YCbCr").convert("RGB"))
