"""Where the house number lands in the crop: 3x3 homographies (stretch, shear, rotation,
perspective) on nested tuples, and the warp that applies one."""
import math
from typing import Tuple

import numpy as np
from PIL import Image

from svhn_tfx.components.generator.settings import GeneratorSettings

def matmul(a, b):
    """3x3 matrix product on nested tuples (numpy's overhead dominates at this size)."""
    return tuple(tuple(sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3))
                 for i in range(3))


def inverse3(m):
    """Inverse of a 3x3 matrix given as nested tuples (by cofactors)."""
    (a, b, c), (d, e, f), (g, h, i) = m
    co = ((e * i - f * h, c * h - b * i, b * f - c * e),
          (f * g - d * i, a * i - c * g, c * d - a * f),
          (d * h - e * g, b * g - a * h, a * e - b * d))
    det = a * co[0][0] + b * co[1][0] + c * co[2][0]
    return tuple(tuple(v / det for v in row) for row in co)


def homography(rng: np.random.Generator, settings: GeneratorSettings, centre, ref_h: float):
    """String coordinates -> scene coordinates (digit centre at the origin), a 3x3 tuple."""
    cx, cy = centre
    sx = rng.uniform(*settings.aspect_stretch)
    m = ((sx, 0.0, -sx * cx), (0.0, 1.0, -cy), (0.0, 0.0, 1.0))
    if not settings.distortions:
        return m
    shx = rng.uniform(-settings.max_shear, settings.max_shear) * (rng.random() < 0.6)
    a = math.radians(rng.uniform(-settings.max_rotation_deg, settings.max_rotation_deg))
    ca, sa = math.cos(a), math.sin(a)
    rot_shear = ((ca, ca * shx - sa, 0.0), (sa, sa * shx + ca, 0.0), (0.0, 0.0, 1.0))
    p = settings.max_perspective / ref_h
    persp = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (rng.uniform(-p, p), rng.uniform(-p, p), 1.0))
    return matmul(persp, matmul(rot_shear, m))


def project(h, box) -> Tuple[float, float, float, float]:
    """Axis-aligned scene box of a string-coordinate box mapped by homography h."""
    x0, y0, x1, y1 = box
    xs, ys = [], []
    for x, y in ((x0, y0), (x1, y0), (x0, y1), (x1, y1)):
        w = h[2][0] * x + h[2][1] * y + h[2][2]
        xs.append((h[0][0] * x + h[0][1] * y + h[0][2]) / w)
        ys.append((h[1][0] * x + h[1][1] * y + h[1][2]) / w)
    return min(xs), min(ys), max(xs), max(ys)


def warp(img: Image.Image, r: int, coeffs) -> np.ndarray:
    out = img.transform((r, r), Image.PERSPECTIVE, coeffs, resample=Image.BILINEAR)
    return np.asarray(out, dtype=np.float32) * (1.0 / 255.0)
