"""RECCE/PANet layers against independent references: EMA, CBAM and the graph reasoning."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from src.detectors.layers.cbam import CBAM
from src.detectors.layers.ema import EfficientMultiScaleAttention
from src.detectors.layers.graph_reasoning import MultiScaleGraphReasoning
from src.detectors.layers.reconstruction import GuidedAttention, ReconstructionDecoder


def _randomise(module: torch.nn.Module, seed: int = 0) -> None:
    """Non-default values for every parameter (norm affines included), so no term is trivial."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.3)


# ------------------------------------------------------------------------- EMA
@pytest.mark.parametrize(("channels", "groups"), [(728, 8), (64, 4), (256, 8), (12, 1)])
def test_ema_parameter_count(channels: int, groups: int) -> None:
    cg = channels // groups
    ema = EfficientMultiScaleAttention(channels, groups)
    assert sum(p.numel() for p in ema.parameters()) == 10 * cg**2 + 4 * cg


def test_ema_rejects_groups_that_do_not_divide_channels() -> None:
    with pytest.raises(ValueError, match="groups=7 must divide channels=256"):
        EfficientMultiScaleAttention(256, 7)


def _ema_by_hand(ema: EfficientMultiScaleAttention, x: torch.Tensor) -> torch.Tensor:
    """The EMA equations, one sample and one channel group at a time."""
    b, c, h, w = x.shape
    groups = ema.groups
    cg = c // groups
    w1 = ema.coordinate_conv.weight[:, :, 0, 0]
    b1 = ema.coordinate_conv.bias
    gamma, beta = ema.norm.weight, ema.norm.bias
    out = torch.empty_like(x)
    for n in range(b):
        for g in range(groups):
            part = x[n, g * cg : (g + 1) * cg]  # (cg, H, W)
            along_h = w1 @ part.mean(dim=2) + b1[:, None]  # pooled over W: (cg, H)
            along_w = w1 @ part.mean(dim=1) + b1[:, None]  # pooled over H: (cg, W)
            gated = part * torch.sigmoid(along_h)[:, :, None] * torch.sigmoid(along_w)[:, None, :]
            # GroupNorm with one channel per group: each channel over its own H x W.
            mu = gated.mean(dim=(1, 2), keepdim=True)
            var = ((gated - mu) ** 2).mean(dim=(1, 2), keepdim=True)
            x1 = (gated - mu) / torch.sqrt(var + ema.norm.eps) * gamma[:, None, None]
            x1 = x1 + beta[:, None, None]
            x2 = F.conv2d(part[None], ema.local_conv.weight, ema.local_conv.bias, padding=1)[0]
            a1 = torch.softmax(x1.mean(dim=(1, 2)), dim=0)
            a2 = torch.softmax(x2.mean(dim=(1, 2)), dim=0)
            weights = torch.einsum("c,chw->hw", a1, x2) + torch.einsum("c,chw->hw", a2, x1)
            out[n, g * cg : (g + 1) * cg] = part * torch.sigmoid(weights)
    return out


def test_ema_matches_the_equations_by_hand() -> None:
    torch.manual_seed(0)
    ema = EfficientMultiScaleAttention(12, groups=3).double()
    _randomise(ema)
    x = torch.randn(2, 12, 5, 7, dtype=torch.float64)  # H != W catches a swapped axis
    expected = _ema_by_hand(ema, x)
    assert torch.allclose(ema(x), expected, atol=1e-10)
    # Not the identity nor a constant scale: the gate varies over positions and channels.
    ratio = ema(x) / x
    assert ratio.std() > 0.01


# ------------------------------------------------------------------------ CBAM
def test_cbam_on_a_hand_made_tensor() -> None:
    cbam = CBAM(2, reduction=2).eval()  # hidden width 1
    with torch.no_grad():
        first, second = cbam.channel.mlp[0], cbam.channel.mlp[2]
        first.weight.copy_(torch.tensor([[1.0, -1.0]]))
        first.bias.zero_()
        second.weight.copy_(torch.tensor([[1.0], [2.0]]))
        second.bias.copy_(torch.tensor([0.0, -10.0]))
        conv = cbam.spatial.conv
        conv.weight.zero_()
        conv.weight[0, 0, 3, 3] = 1.0  # the max over channels
        conv.weight[0, 1, 3, 3] = 0.5  # the mean over channels
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, -4.0]]]])

    def sigmoid(v: float) -> float:
        return 1 / (1 + math.exp(-v))

    # Channel gate: avg = (2.5, -1), max = (4, 0); hidden = relu(a0 - a1).
    # avg -> 3.5 -> (3.5, 7 - 10); max -> 4 -> (4, 8 - 10); summed (7.5, -5).
    channel_scale = (sigmoid(7.5), sigmoid(-5.0))
    gated = (
        [v * channel_scale[0] for v in (1.0, 2.0, 3.0, 4.0)],
        [v * channel_scale[1] for v in (0.0, 0.0, 0.0, -4.0)],
    )
    # Spatial gate on the gated map: BN in eval with fresh statistics divides by sqrt(1 + eps).
    bn_scale = 1 / math.sqrt(1 + cbam.spatial.norm.eps)
    expected = torch.empty(1, 2, 2, 2)
    for position in range(4):
        values = [gated[0][position], gated[1][position]]
        logit = (max(values) + 0.5 * sum(values) / 2) * bn_scale
        for c in range(2):
            expected[0, c, position // 2, position % 2] = values[c] * sigmoid(logit)
    assert torch.allclose(cbam(x), expected, atol=1e-6)


def test_cbam_keeps_the_shape_and_checks_its_options() -> None:
    cbam = CBAM(728)
    assert sum(p.numel() for p in cbam.channel.parameters()) == 728 * 45 + 45 + 45 * 728 + 728
    assert cbam(torch.randn(2, 728, 5, 3)).shape == (2, 728, 5, 3)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        CBAM(8, kernel_size=4)


# ------------------------------------------------------------- graph reasoning
def graph_reasoning_loop(
    weights: dict[str, torch.Tensor], coarse: torch.Tensor, *fine: torch.Tensor
) -> torch.Tensor:
    """The reference's equations, one coarse position at a time, from the raw weight tensors.

    Written with plain torch ops on the tensors of the module's state_dict (never
    its submodules), following the reference description of RECCE's graph
    reasoning: queries ``q = W2 ReLU(W1 a)`` (1x1 convs), neighbours of position
    n the ``r x r`` block of the finer map under it, each embedded by
    ``V2 ReLU(V1 x)``; ``a_nk = softmax_k(ReLU(S [q_n; v_nk]))``; the branch
    output ``(1 - sigmoid(G a_n)) * sum_k a_nk v_nk``; then
    ``R2 ReLU(R1 sigmoid([branches..., q]))``. Dropout is off (eval, or rate 0).
    """
    b, _, h, w = coarse.shape
    hidden = F.relu(F.conv2d(coarse, weights["query.0.weight"]))
    query = F.conv2d(hidden, weights["query.2.weight"]).flatten(2)  # (B, width, N), raster order
    outputs = []
    for index, finer in enumerate(fine):
        prefix = f"branches.{index}."
        r = finer.shape[-1] // w
        embed_in, embed_out = weights[prefix + "embed.0.weight"], weights[prefix + "embed.2.weight"]
        score = weights[prefix + "score.weight"]  # (1, 2 * width)
        gate = 1 - torch.sigmoid(F.conv2d(coarse, weights[prefix + "gate.weight"])).flatten(2)
        columns = []
        for position in range(h * w):
            i, j = divmod(position, w)
            block = finer[:, :, i * r : (i + 1) * r, j * r : (j + 1) * r]  # (B, C, r, r)
            neighbours = block.flatten(2).transpose(1, 2)  # (B, r*r, C)
            values = F.relu(neighbours @ embed_in.T) @ embed_out.T  # (B, r*r, width)
            repeated = query[:, :, position].unsqueeze(1).expand(-1, r * r, -1)
            scores = F.relu(torch.cat([repeated, values], dim=-1) @ score.T)  # (B, r*r, 1)
            attention = torch.softmax(scores, dim=1)
            summed = (values * attention).sum(dim=1)  # (B, width)
            columns.append(summed * gate[:, :, position])
        outputs.append(torch.stack(columns, dim=-1))
    nodes = torch.sigmoid(torch.cat([*outputs, query], dim=1)).reshape(b, -1, h, w)
    hidden = F.relu(F.conv2d(nodes, weights["reproject.0.weight"]))
    return F.conv2d(hidden, weights["reproject.2.weight"])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_graph_reasoning_equals_the_per_position_loop(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    module = MultiScaleGraphReasoning(
        channels=24, fine_channels=(16, 8), ratios=(2, 4), width=12, drop_rate=0.0
    )
    module = module.to(dtype).eval()
    assert set(module.state_dict()) == {
        "query.0.weight",
        "query.2.weight",
        "reproject.0.weight",
        "reproject.2.weight",
        *(
            f"branches.{i}.{n}.weight"
            for i in (0, 1)
            for n in ("embed.0", "embed.2", "score", "gate")
        ),
    }
    coarse = torch.randn(3, 24, 3, 5, dtype=dtype)  # h != w
    fine = (torch.randn(3, 16, 6, 10, dtype=dtype), torch.randn(3, 8, 12, 20, dtype=dtype))
    with torch.no_grad():
        fast = module(coarse, *fine)
        slow = graph_reasoning_loop(module.state_dict(), coarse, *fine)
    assert fast.shape == coarse.shape
    assert torch.allclose(fast, slow, atol=1e-5 if dtype == torch.float32 else 1e-12)


def test_graph_reasoning_attends_to_the_right_neighbours() -> None:
    """Changing one fine block changes exactly the coarse position above it."""
    torch.manual_seed(1)
    module = MultiScaleGraphReasoning(24, (16, 8), (2, 4), width=12, drop_rate=0.0).eval()
    coarse = torch.randn(1, 24, 3, 5)
    fine = [torch.randn(1, 16, 6, 10), torch.randn(1, 8, 12, 20)]
    with torch.no_grad():
        before = module(coarse, *fine)
        fine[1][:, :, 4:8, 12:16] += 3.0  # the block under coarse position (1, 3)
        after = module(coarse, *fine)
    changed = (after - before).abs().amax(dim=1)[0] > 1e-6
    expected = torch.zeros(3, 5, dtype=torch.bool)
    expected[1, 3] = True
    assert torch.equal(changed, expected)


def test_graph_reasoning_gradients_match_the_loop() -> None:
    torch.manual_seed(2)
    module = MultiScaleGraphReasoning(24, (16, 8), (2, 4), width=12, drop_rate=0.0).double()
    coarse = torch.randn(2, 24, 2, 3, dtype=torch.float64)
    fine = (torch.randn(2, 16, 4, 6, dtype=torch.float64), torch.randn(2, 8, 8, 12).double())
    grads = []
    parameters = module.state_dict(keep_vars=True)  # the Parameters themselves, so grads flow
    for forward in (module, lambda *a: graph_reasoning_loop(parameters, *a)):
        module.zero_grad()
        forward(coarse, *fine).square().sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in module.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-10)


def test_graph_reasoning_names_a_size_mismatch() -> None:
    module = MultiScaleGraphReasoning(24, (16, 8), (2, 4), width=12)
    with pytest.raises(ValueError, match="finer map of 7x10 does not tile a 3x5 map with ratio 2"):
        module(torch.randn(1, 24, 3, 5), torch.randn(1, 16, 7, 10), torch.randn(1, 8, 12, 20))


# ------------------------------------------------------ decoder and attention
def test_decoder_sizes_follow_the_embedding_and_the_input() -> None:
    decoder = ReconstructionDecoder(32, widths=(16, 8, 4)).eval()
    out = decoder(torch.randn(2, 32, 4, 4), (64, 64))
    assert out.stage2.shape == (2, 16, 8, 8)
    assert out.stage4.shape == (2, 8, 16, 16)
    assert out.reconstruction.shape == (2, 3, 64, 64)
    assert out.reconstruction.abs().max() <= 1


def test_guided_attention_is_the_residual_path_when_the_map_is_zero() -> None:
    attention = GuidedAttention(8, drop_rate=0.0).eval()
    with torch.no_grad():
        attention.weight[0].weight.fill_(1.0)  # positive residual -> positive response
        attention.weight[2].weight.fill_(-1e4)  # -> sigmoid 0
    features = torch.randn(2, 8, 3, 3)
    images = torch.rand(2, 3, 12, 12) + 0.5
    out = attention(images, torch.zeros_like(images), features)
    assert torch.allclose(out, features, atol=1e-6)
