"""A small timm ViT whose weights are set by code, with heads whose right labels are known.

Residual stream (72 channels), written by the patch embedding and the position embedding:

====  ==============================================================================
ch    meaning
====  ==============================================================================
0     constant 1 (patch-embedding bias; the class token has it too)
1, 2  +B / -B "ballast": keeps every token's LayerNorm scale nearly the same
3     brightness: mean of the patch's normalised pixels, in [-1, 1]
4, 5  left-minus-right and top-minus-bottom half means (an intensity step inside the patch)
6, 7  responses to a 1-px and a 2-px checkerboard (fine, repeated structure = texture)
8     |step|, written by block 0's MLP: GELU(a x) + GELU(-a x) is about a|x| (an edge)
9     texture energy, written by block 0's MLP: |checkerboards| + TEXTURE_GAIN * sum of
      |fine filter| over channels 18-65
10-17 position: cos / sin of omega_k . p for 4 directions, p centred on the grid
18-65 natural fine structure: on each of the 16 4x4-pixel sub-blocks of the patch, the
      4-tap Laws (1980) masks spot x spot, edge x edge and level x spot + spot x level
      (L = [1, 1, 1, 1], S = [-1, 1, 1, -1], E = [-1, -1, 1, 1]): zero-sum, so blind to
      flat regions; the first two see grass, gravel or fur, the third thin horizontal and
      vertical lines (the mortar of brick, which the first two are blind to)
66    texture energy averaged over the patch's neighbourhood, written by block 1's
      attention: Laws' "macro-window" (texture is a property of a region, not of one
      patch: an outline patch next to a flat object averages low, a brick patch high)
====  ==============================================================================

Block 0: attention output zeroed; the MLP turns channels 4-7 and 18-65 into the rectified 8
and 9 (the nonlinearity an edge or texture detector needs). Block 1: one head averages
channel 9 over each patch's neighbourhood into 66 (query = key = position, as the local
head below but broader); its other heads and its MLP write nothing. Block 2 holds the
planted heads (query of the class token = channel 0, so the class row ranks patches by one
key channel):

====  ===========  ======================================================  ==============
head  name         query . key                                             expected label
====  ===========  ======================================================  ==============
0     bright       ch0 . +brightness                                       foreground
1     dark         ch0 . -brightness                                       background
2     edge         ch0 . |step|                                            edge
3     texture      ch0 . (averaged texture energy - |step|)                texture
4     local        pos(p_i) . pos(p_j): largest for p_j = p_i               local
5     uniform      zero query and key                                      uniform
6     mirror       pos(-p_i) . pos(p_j): largest for the point-mirrored p_j  global
7     bright twin  same weights as head 0                                  foreground
8     edge twin    same weights as head 2                                  edge
====  ===========  ======================================================  ==============
"""

from __future__ import annotations

import math

import numpy as np
import timm
import torch

DIM, HEADS, HD = 72, 9, 8
LAYER = 2  # the block that holds the planted heads
AVERAGED = 66  # channel of the neighbourhood-averaged texture energy
POS_AVG = 6.0  # position gain of block 1's averaging head: about a 3 x 3 window
BALLAST = 6.0
TEXTURE_GAIN = 0.4  # weight of the natural fine-structure energy in channel 9
TEXTURE_Q = 2.0  # the texture head's query: a broad map over the textured region (not the
# one most energetic patch, which on brick can be a thin part of the object's outline)
EXPECTED = {0: "foreground", 1: "background", 2: "edge", 3: "texture", 4: "local",
            5: "uniform", 6: "global", 7: "foreground", 8: "edge"}
TWINS = [(0, 7), (2, 8)]
OMEGAS = [(0.22, 0.0), (0.0, 0.22), (0.156, 0.156), (0.156, -0.156)]


def planted_vit() -> torch.nn.Module:
    torch.manual_seed(0)
    m = timm.create_model("vit_base_patch16_224", pretrained=False, embed_dim=DIM, depth=3,
                          num_heads=HEADS, num_classes=2, qkv_bias=False).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        for ln in [m.norm, *(b.norm1 for b in m.blocks), *(b.norm2 for b in m.blocks)]:
            ln.weight.fill_(1.0)
        # --- patch embedding: input pixels are (v / 255 - 0.5) / 0.5 in [-1, 1]
        w = m.patch_embed.proj.weight  # [72, 3, 16, 16]
        b = m.patch_embed.proj.bias
        b[0], b[1], b[2] = 1.0, BALLAST, -BALLAST
        n = 3 * 256
        w[3] = 1.0 / n
        w[4, :, :, :8], w[4, :, :, 8:] = 2.0 / n, -2.0 / n
        w[5, :, :8, :], w[5, :, 8:, :] = 2.0 / n, -2.0 / n
        y, x = np.mgrid[0:16, 0:16]
        checker1 = torch.from_numpy((-1.0) ** (x + y)).float()
        checker2 = torch.from_numpy((-1.0) ** (x // 2 + y // 2)).float()
        w[6] = 64.0 * checker1 / n
        w[7] = 64.0 * checker2 / n
        spot = torch.tensor([-1.0, 1.0, 1.0, -1.0])
        edge = torch.tensor([-1.0, -1.0, 1.0, 1.0])
        level = torch.ones(4)
        lines = torch.outer(level, spot) + torch.outer(spot, level)
        fine = []
        for bi in range(4):
            for bj in range(4):
                for prof in (torch.outer(spot, spot), torch.outer(edge, edge), lines):
                    k = torch.zeros(16, 16)
                    k[4 * bi:4 * bi + 4, 4 * bj:4 * bj + 4] = prof
                    fine.append(k)
        for i, k in enumerate(fine):
            w[18 + i] = k / 3.0  # the three colour channels alike
        # --- class token: the constant channel and the ballast, no position
        m.cls_token[0, 0, 0], m.cls_token[0, 0, 1], m.cls_token[0, 0, 2] = 1.0, BALLAST, -BALLAST
        # --- position embedding of the 14 x 14 patches (index 0 is the class token)
        g = 14
        rr, cc = np.meshgrid(np.arange(g) - (g - 1) / 2, np.arange(g) - (g - 1) / 2,
                             indexing="ij")
        for k, (wr, wc) in enumerate(OMEGAS):
            phase = torch.from_numpy((wr * rr + wc * cc).ravel()).float()
            m.pos_embed[0, 1:, 10 + 2 * k] = torch.cos(phase)
            m.pos_embed[0, 1:, 11 + 2 * k] = torch.sin(phase)
        # --- block 0: no attention output; MLP rectifies steps and checkerboards
        mlp = m.blocks[0].mlp
        a = 4.0
        units = [(4, 8, 1, 1.0), (4, 8, -1, 1.0), (5, 8, 1, 1.0), (5, 8, -1, 1.0),
                 (6, 9, 1, 1.0), (6, 9, -1, 1.0), (7, 9, 1, 1.0), (7, 9, -1, 1.0)]
        units += [(18 + i, 9, sign, TEXTURE_GAIN) for i in range(len(fine)) for sign in (1, -1)]
        for unit, (src, dst, sign, out) in enumerate(units):
            mlp.fc1.weight[unit, src] = sign * a
            mlp.fc2.weight[dst, unit] = out / a
        # --- block 1: head 0 averages the texture energy over the neighbourhood
        # (q_i = k_i = POS_AVG pos(p_i); value = channel 9, written to AVERAGED)
        avg = m.blocks[1].attn
        for i in range(8):
            avg.qkv.weight[i, 10 + i] = POS_AVG
            avg.qkv.weight[DIM + i, 10 + i] = POS_AVG
        avg.qkv.weight[2 * DIM, 9] = 1.0
        avg.proj.weight[AVERAGED, 0] = 1.0
        # --- block 2: the planted heads (q rows 0..71, k rows 72..143 of qkv)
        qkv = m.blocks[LAYER].attn.qkv.weight

        def head(h: int, q_src: dict[int, float], k_src: dict[int, float]) -> None:
            """One query and one key dimension: q0 = sum q_src[ch] x_ch, same for k0."""
            for ch, v in q_src.items():
                qkv[h * HD, ch] = v
            for ch, v in k_src.items():
                qkv[DIM + h * HD, ch] = v

        gain = 8.0
        head(0, {0: gain}, {3: gain})
        head(1, {0: gain}, {3: -gain})
        head(2, {0: gain}, {8: gain * 1.5})
        head(3, {0: TEXTURE_Q}, {AVERAGED: gain * 0.5, 8: -gain * 2.5})  # texture, not steps
        pos = 12.0
        # local: q_i = k_i = pos(p_i): q.k = sum_k cos(omega_k . (p_i - p_j))
        for i in range(8):
            qkv[4 * HD + i, 10 + i] = pos
            qkv[DIM + 4 * HD + i, 10 + i] = pos
        # mirror: q_i = (cos, -sin)(omega . p_i): q.k = sum_k cos(omega_k . (p_i + p_j))
        for i in range(8):
            qkv[6 * HD + i, 10 + i] = pos * (1 if i % 2 == 0 else -1)
            qkv[DIM + 6 * HD + i, 10 + i] = pos
        qkv[7 * HD: 8 * HD] = qkv[0: HD]
        qkv[DIM + 7 * HD: DIM + 8 * HD] = qkv[DIM: DIM + HD]
        qkv[8 * HD: 9 * HD] = qkv[2 * HD: 3 * HD]
        qkv[DIM + 8 * HD: DIM + 9 * HD] = qkv[DIM + 2 * HD: DIM + 3 * HD]
    assert math.isclose(float(m.blocks[LAYER].attn.scale), HD ** -0.5)
    return m
