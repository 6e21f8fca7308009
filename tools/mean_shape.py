"""Mean landmark shape of the JSRT training split, written as the app's landmark template.

The template (assets/template_landmarks.csv) draws the synthetic phantom and the
per-node error plot. It is a statistic of the landmark files, not the data itself.
Usage: python3 tools/mean_shape.py [../shared/data/jsrt/landmarks.csv] > assets/template_landmarks.csv
"""
import csv
import sys

path = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/jsrt/landmarks.csv"
sums = [[0.0, 0.0] for _ in range(120)]
n = 0
with open(path, newline="") as f:
    for row in csv.DictReader(f):
        if row["split"] != "train":
            continue
        v = [float(t) for t in row["Landmarks"].split(",")]
        assert len(v) == 240, row["image"]
        for i in range(120):
            sums[i][0] += v[2 * i]
            sums[i][1] += v[2 * i + 1]
        n += 1
print("Node,x,y")
for i, (x, y) in enumerate(sums):
    print(f"{i},{x / n:.2f},{y / n:.2f}")
print(f"# mean of {n} training images, 1024x1024 pixels", file=sys.stderr)
