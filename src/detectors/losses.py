"""Loss functions of the detectors (targets come from :mod:`src.detectors.targets`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def focal_loss(logits: Tensor, target: Tensor, positive_weight: float = 1.0) -> Tensor:
    """CornerNet's penalty-reduced focal loss (LAA-Net Eq. 5-6), as the authors code it.

    ``p = clamp(sigmoid(logit), 1e-4, 1 - 1e-4)``; positives are pixels where the
    target is exactly 1; the sum over the batch is divided by the number of
    positives (only the negative term when there are none). ``positive_weight``
    scales the positive term (the authors' code: 0.72, a label smoothing).
    """
    p = torch.sigmoid(logits.float()).clamp(1e-4, 1 - 1e-4)
    target = target.float()
    positive = target.eq(1)
    pos_loss = positive_weight * (torch.log(p) * (1 - p) ** 2)[positive].sum()
    neg_loss = (torch.log(1 - p) * p**2 * (1 - target) ** 4)[~positive].sum()
    n_pos = positive.sum()
    if n_pos == 0:
        return -neg_loss
    return -(pos_loss + neg_loss) / n_pos


def consistency_loss(embedding: Tensor, target: Tensor) -> Tensor:
    """BCE between ``sigmoid(<e_a, e_x> / sqrt(D))`` and the target, a = argmax of the target.

    embedding (B, D, h, w), target (B, h, w), as the authors' code computes it.
    """
    b, d, h, w = embedding.shape
    flat = embedding.float().flatten(2)  # (B, D, hw)
    anchor = target.flatten(1).argmax(1)
    anchor_vectors = flat[torch.arange(b, device=flat.device), :, anchor]  # (B, D)
    similarity = torch.einsum("bd,bdn->bn", anchor_vectors, flat) / math.sqrt(d)
    return F.binary_cross_entropy_with_logits(similarity, target.flatten(1).float())


def reconstruction_loss(reconstruction: Tensor, image: Tensor, label: Tensor) -> Tensor:
    """Mean absolute error between reconstruction and image over the real samples only.

    RECCE / PANet Eq. 9: the decoder learns what real faces look like, so fakes
    are left out; a batch without reals gives 0 (still joined to the graph, so
    every parameter receives a gradient, zero, under DDP). Each real image's L1
    norm is divided by its number of values (C*H*W), as the authors' code does:
    summed, the term would outweigh the classification loss by orders of magnitude
    at the paper's weight of 0.1.
    """
    per_sample = (reconstruction.float() - image.float()).abs().flatten(1).mean(1)
    real = (label < 0.5).float()
    return (per_sample * real).sum() / real.sum().clamp_min(1)


def metric_learning_loss(embeddings: Tensor, label: Tensor) -> Tensor:
    """PANet Eq. 10: mean real-real cosine distance minus mean real-fake cosine distance.

    embeddings (B, D) (or (B, C, H, W), flattened), label (B,) with 1 = fake.
    The distance is Eq. 11, ``(1 - <a/|a|, b/|b|>) / 2`` in [0, 1]. Real-real pairs
    are those of two different samples (a sample's distance to itself is 0 and
    would only dilute the mean); a mean over no pairs is 0. The authors' code
    computes ``max(0, 1 + this)``, whose hinge can never act because each mean
    lies in [0, 1]: the same gradient, shifted by 1.
    """
    unit = F.normalize(embeddings.float().flatten(1), dim=1)
    distance = (1 - unit @ unit.T) / 2
    real = label < 0.5
    different = ~torch.eye(len(label), dtype=torch.bool, device=label.device)
    real_real = (real[:, None] & real[None, :] & different).float()
    real_fake = (real[:, None] & ~real[None, :]).float()

    def mean_over(pairs: Tensor) -> Tensor:
        return (distance * pairs).sum() / pairs.sum().clamp_min(1)

    return mean_over(real_real) - mean_over(real_fake)


def dense_bce(logits: Tensor, target: Tensor, selected: Tensor) -> Tensor:
    """Mean BCE over the maps of the selected samples (Y-net Eq. 5 and 6).

    ``1/N sum_i BCE(map_i, target_i)`` with each BCE averaged over its map is
    the mean over every element, since all maps have one size. ``selected``
    (B,) bool says which samples have a known target (:func:`dense_supervision`);
    with none, the loss is a zero that keeps the graph (every parameter still
    receives a gradient, as DDP requires).
    """
    if not bool(selected.any()):
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[selected].float(), target[selected].float())
