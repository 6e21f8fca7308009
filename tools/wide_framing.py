"""A wider framing of the JSRT val images, for judging models on a framing they never trained on.

Each 1024 x 1024 val image is pasted unscaled into a 1280 x 1280 black canvas (the chest at
80 % of the side), at an offset that differs from image to image; its landmarks move with it.
`cxr-review validate --data OUT --samples 20` then scores a model there (assets/README.md).
Needs Pillow. Usage: python3 tools/wide_framing.py ../shared/data/jsrt OUT
"""
import csv
import os
import sys

from PIL import Image

SIDE = 1280


def main(src, dst):
    os.makedirs(f"{dst}/images", exist_ok=True)
    rows = [r for r in csv.DictReader(open(f"{src}/landmarks.csv")) if r["split"] == "val"]
    with open(f"{dst}/landmarks.csv", "w", newline="") as out:
        w = csv.writer(out)
        w.writerow(["image", "split", "Landmarks"])
        for i, r in enumerate(rows):
            img = Image.open(f"{src}/images/{r['image']}.png").convert("L")
            free = SIDE - img.width
            # Deterministic offsets spread over the free margin, x and y out of step.
            ox, oy = (i * 97) % (free + 1), (i * 53 + free // 3) % (free + 1)
            canvas = Image.new("L", (SIDE, SIDE), 0)
            canvas.paste(img, (ox, oy))
            canvas.save(f"{dst}/images/{r['image']}.png")
            v = [float(x) for x in r["Landmarks"].split(",")]
            moved = [x + (ox if k % 2 == 0 else oy) for k, x in enumerate(v)]
            w.writerow([r["image"], "val", ",".join(f"{x:.2f}" for x in moved)])
    print(f"{len(rows)} images in {dst}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
