"""Mode coverage of generated samples, as in the VEEGAN / PacGAN evaluations of GANs on Gaussian mixtures.

For 2-D mixtures with known centres c_1..c_K and standard deviation sigma:
* a sample is *high quality* if it lies within n_sigma * sigma (3 by default) of its nearest centre;
* a mode is *covered* if it is the nearest centre of at least one high-quality sample;
* KL = sum_k p_k log(p_k / (1/K)) over the modes of the high-quality samples (0 when they spread evenly over all K
  modes, log K when they all sit on one mode; NaN when there is no high-quality sample at all).
For images, a classifier stands in for the centres: the generated samples' class histogram (confident predictions
only) gives classes covered and the KL to uniform in the same way (dlf.metrics.classifier).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def kl_to_uniform(counts: torch.Tensor) -> float:
    """KL(p || uniform over len(counts) bins) of the histogram `counts`; NaN for an empty histogram."""
    total = float(counts.sum())
    if total == 0:
        return math.nan
    p = counts.double() / total
    p = p[p > 0]
    return float((p * (p * len(counts)).log()).sum())          # sum_k p_k log(p_k / (1/K))


@dataclass
class ModeStats:
    high_quality: float   # fraction of samples within n_sigma * sigma of their nearest centre (0..1)
    modes: int            # modes nearest to at least one high-quality sample
    kl: float             # KL(high-quality mode histogram || uniform); NaN if there is none
    counts: torch.Tensor  # high-quality samples per mode [K]

    def as_dict(self, prefix: str) -> dict[str, float]:
        return {f"{prefix}/high_quality": 100.0 * self.high_quality, f"{prefix}/modes": float(self.modes),
                f"{prefix}/kl": self.kl, f"{prefix}/score": self.modes + self.high_quality}


def mode_stats(samples: torch.Tensor, centres: torch.Tensor, std: float, n_sigma: float = 3.0) -> ModeStats:
    """The three numbers above for `samples` [N, d] against `centres` [K, d]."""
    samples = samples.detach().float().cpu()
    centres = torch.as_tensor(centres, dtype=torch.float32)
    dist = torch.cdist(samples, centres)                          # [N, K] Euclidean distances
    nearest_d, nearest = dist.min(1)
    good = nearest_d <= n_sigma * std
    counts = torch.bincount(nearest[good], minlength=len(centres))
    hq = float(good.float().mean()) if len(samples) else 0.0
    return ModeStats(high_quality=hq, modes=int((counts > 0).sum()), kl=kl_to_uniform(counts), counts=counts)


def class_stats(probs: torch.Tensor, confidence: float = 0.9, min_share: float = 0.01) -> ModeStats:
    """Classifier-based coverage for images from class probabilities [N, C]: a sample is "high quality" if the
    classifier gives its class probability >= `confidence`; a class is covered if it gets at least `min_share` of
    those samples (so a few stray samples do not count as a mode); KL of that histogram from uniform."""
    p_max, label = probs.detach().float().cpu().max(1)
    good = p_max >= confidence
    counts = torch.bincount(label[good], minlength=probs.shape[1])
    n_good = int(good.sum())
    covered = int((counts >= max(1, math.ceil(min_share * n_good))).sum()) if n_good else 0
    hq = float(good.float().mean()) if len(probs) else 0.0
    return ModeStats(high_quality=hq, modes=covered, kl=kl_to_uniform(counts), counts=counts)
