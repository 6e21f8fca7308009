"""Write the model parity fixtures in tests/fixtures/model/ (see README.md beside this file).

For each variant: `<name>.pt`, a state dict of random weights in the released key layout, and
`<name>.safetensors`, the arrays the Rust test compares against: the input image, μ, log σ²,
conv5, conv6, three fixed latents z, and every decoder stage for them (coarse, skip1, pos1,
refined, skip2, pos2, output; see HybridGNet.decode_stages).

Usage: python tools/reference/export_fixture.py [OUT_DIR]
"""
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from hybridgnet import HybridGNet  # noqa: E402

# Small channel widths keep the fixture under 2 MB; the layer semantics are those of the
# released widths. skip_s192: feature maps 12×12 (conv5) and 6×6 (conv6), wide enough for the
# 5-pixel lookup window; noskip_s64: the variant without skip blocks.
VARIANTS = [
    dict(name="skip_s192", size=192, channels=[8, 8, 16, 16, 16, 16], skip=True, seed=1),
    dict(name="noskip_s64", size=64, channels=[4, 8, 8, 16, 16, 16], skip=False, seed=2),
]


def randomise(model, gen):
    """Random values everywhere, including BatchNorm affine terms and ChebConv biases, which
    PyTorch initialises to constants (a test would not see them applied wrongly)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("graphConv_pre.lins.0.weight"):
                # Skip-block positions: mostly inside [0, 1], some near and beyond the border,
                # so the lookup's clamping and out-of-range rules are all exercised.
                fan_in = p.shape[1]
                p.copy_((1.4 + 5.0 * torch.randn(p.shape, generator=gen)) / fan_in)
            elif ".block.0." in name or ".block.3." in name or ".skip.1." in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.3 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))


def synthetic_image(size, gen):
    """A smooth chest-like pattern plus noise, in [0, 1]."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    img = 0.6 - 0.35 * torch.exp(-((xs + 0.4) ** 2 / 0.08 + ys**2 / 0.3))
    img = img - 0.35 * torch.exp(-((xs - 0.4) ** 2 / 0.08 + ys**2 / 0.3))
    img = img + 0.2 * torch.exp(-((xs - 0.1) ** 2 / 0.05 + (ys - 0.3) ** 2 / 0.05))
    img = img + 0.05 * torch.randn(size, size, generator=gen)
    return img.clamp(0, 1).reshape(1, 1, size, size)


def region_counts(pos, h):
    """How many lookup coordinates fall inside, near the border, or out of the feature map."""
    p = pos.flatten() * h
    return dict(
        inside=int(((p >= 1) & (p <= h - 2)).sum()),
        border=int((((p > -2) & (p < 1)) | ((p > h - 2) & (p < h + 1))).sum()),
        outside=int(((p <= -2) | (p >= h + 1)).sum()),
    )


def grid4_count(pos, h):
    """Lookup axes whose f32 box width rounds above 3, so roi_align samples a 4×4 grid."""
    p = pos * h
    return int((torch.ceil(((p + 2) - 0.5) - ((p - 1) - 0.5)) == 4).sum())


def export(v, out_dir):
    gen = torch.Generator().manual_seed(v["seed"])
    torch.manual_seed(v["seed"])
    model = HybridGNet(size=v["size"], channels=v["channels"], skip_blocks=v["skip"])
    randomise(model, gen)
    model.eval()
    image = synthetic_image(v["size"], gen)
    with torch.no_grad():
        mu, logvar, conv5, conv6 = model.encode(image)
        eps = torch.randn(3, mu.shape[1], generator=gen)
        eps[0] = 0.0  # the first latent is μ itself: the plain prediction
        z = mu + eps * torch.exp(0.5 * logvar)
        stages = model.decode_stages(z, conv5, conv6)
    torch.save(model.state_dict(), os.path.join(out_dir, v["name"] + ".pt"))
    arrays = dict(image=image, mu=mu, logvar=logvar, conv5=conv5, conv6=conv6, z=z)
    # Without skip blocks, skip1/skip2 are coarse/refined themselves (and pos1/pos2 None).
    arrays.update({k: t for k, t in stages.items() if t is not None and (v["skip"] or k not in ("skip1", "skip2"))})
    output = stages["output"]
    if v["skip"]:
        pos1, pos2 = stages["pos1"], stages["pos2"]
        print(v["name"], "pos1", region_counts(pos1, conv6.shape[-1]), "pos2", region_counts(pos2, conv5.shape[-1]))
        print(v["name"], "4×4 sampling grids: pos1", grid4_count(pos1, conv6.shape[-1]), "pos2", grid4_count(pos2, conv5.shape[-1]))
    arrays_path = os.path.join(out_dir, v["name"] + ".safetensors")
    save_file({k: t.contiguous() for k, t in arrays.items()}, arrays_path)
    os.chmod(arrays_path, 0o644)
    print(v["name"], "output range", float(output.min()), float(output.max()))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "tests", "fixtures", "model")
    os.makedirs(out_dir, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    for v in VARIANTS:
        export(v, out_dir)


if __name__ == "__main__":
    main()
