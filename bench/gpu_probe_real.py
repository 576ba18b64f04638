"""The real sets the GPU probe scores on, as PNG files a machine without TensorFlow can read:
the dev crops (copied, label = folder) and the real background crops of the format-1 photos
(``none/``), as bench/quality.py reads them.

    .venv/bin/python -m bench.gpu_probe_real ../shared/data .gpu/real
"""
import os
import shutil
import sys

from svhn_tfx import schema
from svhn_tfx.components.converters.digit_struct import read_digit_struct_dir


def main(shared_data: str, out: str) -> None:
    dev, format1 = os.path.join(shared_data, "svhn-real-dev"), os.path.join(shared_data,
                                                                             "svhn-format1")
    for d in sorted(os.listdir(dev)):
        if os.path.isdir(os.path.join(dev, d)):
            shutil.copytree(os.path.join(dev, d), os.path.join(out, d), dirs_exist_ok=True)
    n = 0
    for split in ("train", "test"):
        if not os.path.isdir(os.path.join(format1, split)):
            continue
        for r in read_digit_struct_dir(os.path.join(format1, split), backgrounds_per_image=8,
                                       seed=0):
            if r.error is None and r.label == schema.NO_DIGIT:
                os.makedirs(os.path.join(out, "none"), exist_ok=True)
                with open(os.path.join(out, "none", f"bg_{n:03d}.png"), "wb") as f:
                    f.write(r.image)
                n += 1
    print(f"backgrounds: {n}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
