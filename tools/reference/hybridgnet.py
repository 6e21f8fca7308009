"""HybridGNet with two image-to-graph skip blocks, in PyTorch, written from docs/METHOD.md §3.

This is the reference the Rust model (src/model/) is checked against: it uses the library
layers the method names (torch_geometric's ChebConv, torchvision's roi_align, BatchNorm2d with
track_running_stats=False, InstanceNorm1d), so the Rust code is compared with what those
libraries really compute, not with our reading of them. Module and attribute names give the
state-dict keys of the released weights.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch_geometric.nn import ChebConv
from torchvision.ops import roi_align

# Right lung, left lung, heart (METHOD §1).
ORGAN_SIZES = [44, 50, 26]
COARSE_SIZES = [math.ceil(n / 2) for n in ORGAN_SIZES]
RELEASED_CHANNELS = [8, 16, 32, 64, 128, 128]


def ring_edge_index(sizes):
    """Both directions of every ring edge, organs laid out one after the other."""
    src, dst = [], []
    start = 0
    for n in sizes:
        for i in range(n):
            j = (i + 1) % n
            src += [start + i, start + j]
            dst += [start + j, start + i]
        start += n
    return torch.tensor([src, dst], dtype=torch.long)


def upsample_matrix():
    """U (120×60): even fine node → its coarse node; odd → mean of the two around it."""
    u = torch.zeros(sum(ORGAN_SIZES), sum(COARSE_SIZES))
    f0 = c0 = 0
    for n, m in zip(ORGAN_SIZES, COARSE_SIZES):
        for i in range(n):
            if i % 2 == 0:
                u[f0 + i, c0 + i // 2] = 1.0
            else:
                u[f0 + i, c0 + i // 2] = 0.5
                u[f0 + i, c0 + (i // 2 + 1) % m] = 0.5
        f0 += n
        c0 += m
    return u


def downsample_matrix():
    """D (60×120): coarse j = mean of fine 2j and 2j+1 (just 2j at the end of an odd ring)."""
    d = torch.zeros(sum(COARSE_SIZES), sum(ORGAN_SIZES))
    f0 = c0 = 0
    for n, m in zip(ORGAN_SIZES, COARSE_SIZES):
        for j in range(m):
            if 2 * j + 1 < n:
                d[c0 + j, f0 + 2 * j] = 0.5
                d[c0 + j, f0 + 2 * j + 1] = 0.5
            else:
                d[c0 + j, f0 + 2 * j] = 1.0
        f0 += n
        c0 += m
    return d


class ResidualBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.block = nn.Sequential(
            nn.BatchNorm2d(cin, track_running_stats=False),
            nn.ReLU(),
            nn.Conv2d(cin, cout, 3, padding=1),
            nn.BatchNorm2d(cout, track_running_stats=False),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1),
        )
        if cin != cout:
            self.skip = nn.Sequential(
                nn.Conv2d(cin, cout, 1, bias=False),
                nn.BatchNorm2d(cout, track_running_stats=False),
            )
        else:
            self.skip = nn.Identity()

    def forward(self, x):
        return F.relu(self.block(x) + self.skip(x))


class Encoder(nn.Module):
    def __init__(self, size, channels, latents):
        super().__init__()
        cin = 1
        for i, c in enumerate(channels):
            setattr(self, f"dconv_down{i + 1}", ResidualBlock(cin, c))
            cin = c
        flat = channels[-1] * (size // 32) ** 2
        self.fc_mu = nn.Linear(flat, latents)
        self.fc_logvar = nn.Linear(flat, latents)

    def forward(self, x):
        feats = []
        for i in range(6):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = getattr(self, f"dconv_down{i + 1}")(x)
            feats.append(x)
        conv5, conv6 = feats[4], feats[5]
        flat = conv6.flatten(1)  # (C, H, W) order
        return self.fc_mu(flat), self.fc_logvar(flat), conv5, conv6


def lookup(features, pos):
    """Features of `features` (1×C×h×w, shared by the batch) at `pos` (B×N×2, in [0,1]).

    METHOD §3: roi_align with a box [p−1, p+2] per axis, p = pos·h, output 1×1, aligned=True.
    """
    b, n, _ = pos.shape
    h = features.shape[-1]
    p = (pos * h).reshape(b * n, 2)
    boxes = torch.cat([torch.zeros(b * n, 1), p - 1, p + 2], dim=1)
    out = roi_align(features, boxes, output_size=1, spatial_scale=1.0, sampling_ratio=-1, aligned=True)
    return out.reshape(b, n, -1)


class SkipBlock(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.graphConv_pre = ChebConv(cin, 2, K=1, bias=False)

    def forward(self, x, edge_index, features):
        pos = self.graphConv_pre(x, edge_index)
        return torch.cat([x, lookup(features, pos), pos], dim=2), pos


class HybridGNet(nn.Module):
    def __init__(self, size=1024, channels=RELEASED_CHANNELS, latents=64, skip_blocks=True):
        super().__init__()
        assert size % 32 == 0
        self.skip_blocks = skip_blocks
        self.encoder = Encoder(size, channels, latents)
        nf = 16
        self.dec_lin = nn.Linear(latents, nf * sum(COARSE_SIZES))
        look = channels[-1]
        self.graphConv_up6 = ChebConv(nf, nf, K=6)
        self.graphConv_up5 = ChebConv(nf, nf, K=6)
        self.graphConv_up4 = ChebConv(nf + look + 2 if skip_blocks else nf, 32, K=6)
        self.graphConv_up3 = ChebConv(32, 32, K=6)
        look5 = channels[4]
        self.graphConv_up2 = ChebConv(32 + look5 + 2 if skip_blocks else 32, 32, K=6)
        self.graphConv_up1 = ChebConv(32, 2, K=1, bias=False)
        if skip_blocks:
            self.SC_1 = SkipBlock(nf)
            self.SC_2 = SkipBlock(32)
        self.register_buffer("coarse_edges", ring_edge_index(COARSE_SIZES), persistent=False)
        self.register_buffer("fine_edges", ring_edge_index(ORGAN_SIZES), persistent=False)
        self.register_buffer("U", upsample_matrix(), persistent=False)

    @staticmethod
    def norm(x):
        # InstanceNorm1d without affine on (batch, nodes, features): per node, across features.
        return F.instance_norm(x, eps=1e-5)

    def encode(self, image):
        return self.encoder(image)

    # The decoder in the stages of METHOD §3 (the Rust decoder has the same ones), so that each
    # can be compared on the reference's own input: the lookups are discontinuous in the
    # positions (see lookup in src/model/lookup.rs), so differences of 1e-6 upstream can change
    # a lookup's sampling grid and an end-to-end comparison would not isolate anything.
    def coarse(self, z):
        ce = self.coarse_edges
        x = F.relu(self.dec_lin(z)).reshape(z.shape[0], -1, 16)
        x = F.relu(self.norm(self.graphConv_up6(x, ce)))
        return F.relu(self.norm(self.graphConv_up5(x, ce)))

    def skip1(self, x, conv6):
        return self.SC_1(x, self.coarse_edges, conv6) if self.skip_blocks else (x, None)

    def refine(self, x):
        x = F.relu(self.norm(self.graphConv_up4(x, self.coarse_edges)))
        x = torch.matmul(self.U, x)
        return F.relu(self.norm(self.graphConv_up3(x, self.fine_edges)))

    def skip2(self, x, conv5):
        return self.SC_2(x, self.fine_edges, conv5) if self.skip_blocks else (x, None)

    def head(self, x):
        x = F.relu(self.norm(self.graphConv_up2(x, self.fine_edges)))
        return self.graphConv_up1(x, self.fine_edges)

    def decode_stages(self, z, conv5, conv6):
        """Every stage's output: coarse, skip1, pos1, refined, skip2, pos2, output."""
        out = {}
        out["coarse"] = x = self.coarse(z)
        x, out["pos1"] = self.skip1(x, conv6)
        out["skip1"] = x
        out["refined"] = x = self.refine(x)
        x, out["pos2"] = self.skip2(x, conv5)
        out["skip2"] = x
        out["output"] = self.head(x)
        return out

    def decode(self, z, conv5, conv6):
        s = self.decode_stages(z, conv5, conv6)
        return s["output"], s["pos1"], s["pos2"]
