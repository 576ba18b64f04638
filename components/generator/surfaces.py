"""What digits sit on: colours of walls, plates and digits that contrast as on real houses,
and textures (gradients, stucco, siding, bricks, foliage, patches of real photographs) with
photo-like clutter."""
import colorsys
import functools
import glob
import math
import os
from typing import Dict, Optional, Tuple

import numpy as np
from PIL import Image, ImageDraw

from svhn_tfx.components.generator.settings import GeneratorSettings, pick

LOW_CONTRAST = (0.1, 0.22)   # luminance difference digit vs surface of low-contrast images
MAX_CONTRAST = 0.85
HUE_RANGES = ((-0.03, 0.17), (0.52, 0.7), (0.2, 0.45), (0.0, 1.0))  # warm, blue, green, any
HUE_WEIGHTS = (0.5, 0.2, 0.12, 0.18)
# plain, gradient, blotchy, stripes, bricks, foliage
TEXTURE_WEIGHTS = (0.25, 0.2, 0.25, 0.16, 0.1, 0.04)
# walls of "no digit" crops that show no number at all: busier, as in street photos
BUSY_TEXTURE_WEIGHTS = (0.1, 0.1, 0.2, 0.22, 0.18, 0.2)
LUMA_WEIGHTS = (0.299, 0.587, 0.114)   # Rec. 601 luminance of R, G, B
# public-domain and CC0 photographs (photos/README.md), grey, whose patches shade some walls
PHOTO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "photos")
PHOTO_PATCH = (0.15, 1.0)    # side of a wall's patch, of the photo's shorter side
PHOTO_AMPLITUDE = (0.3, 1.0)  # how much of the patch's relative light and shade is kept


def _luma(rgb) -> float:
    r, g, b = LUMA_WEIGHTS
    return r * rgb[0] + g * rgb[1] + b * rgb[2]


def _hue(rng: np.random.Generator) -> float:
    """Hues of houses: mostly warm (brick, wood, sand), then blue, green, anything."""
    return (rng.uniform(*HUE_RANGES[pick(rng, HUE_WEIGHTS)])) % 1.0


def _colour(rng: np.random.Generator, luma: float, hue: Optional[float] = None) -> np.ndarray:
    """A colour of the given luminance; mostly greyish, sometimes strongly coloured."""
    u = rng.random()
    sat = rng.uniform(0.0, 0.12) if u < 0.6 else (
        rng.uniform(0.12, 0.4) if u < 0.9 else rng.uniform(0.4, 0.9))
    rgb = colorsys.hsv_to_rgb(_hue(rng) if hue is None else hue, sat, 1.0)
    scale = luma / max(_luma(rgb), 1e-3)
    rgb = [v * scale for v in rgb]
    top = max(rgb)
    if top > 1.0:  # too bright for this hue: pull towards grey of the same luminance
        t = (1.0 - luma) / max(top - luma, 1e-6)
        rgb = [luma + (v - luma) * t for v in rgb]
    return np.array([min(max(v, 0.0), 1.0) for v in rgb], np.float32)


def palette(rng: np.random.Generator, settings: GeneratorSettings, plate: bool
             ) -> Dict[str, np.ndarray]:
    """Wall, plate, digit and outline colours; digits contrast with what they sit on."""
    wall_luma = rng.uniform(0.06, 0.95)
    wall = _colour(rng, wall_luma)
    if plate:
        surface_luma = rng.uniform(0.05, 0.97)
        surface = _colour(rng, surface_luma)
    else:
        surface_luma, surface = wall_luma, wall
    if rng.random() < settings.low_contrast_fraction:
        contrast = rng.uniform(*LOW_CONTRAST)
    else:
        contrast = rng.uniform(LOW_CONTRAST[1], MAX_CONTRAST)
    darker = rng.random() < 0.15 + 0.7 * surface_luma  # dark digits on light surfaces, mostly
    fg_luma = surface_luma - contrast if darker else surface_luma + contrast
    if not 0.02 <= fg_luma <= 0.98:
        fg_luma = surface_luma + contrast if darker else surface_luma - contrast
    fg_luma = min(max(fg_luma, 0.02), 0.98)
    hue = None if rng.random() < 0.6 else colorsys.rgb_to_hsv(*surface)[0]
    fg = _colour(rng, fg_luma, hue)
    # an outline stands out from the digit it surrounds: light around dark digits and
    # dark around light ones
    outline_luma = rng.uniform(0.7, 1.0) if fg_luma < 0.5 else rng.uniform(0.0, 0.3)
    outline = _colour(rng, outline_luma)
    return {"wall": wall, "surface": surface, "fg": fg, "outline": outline}


def ramp(rng: np.random.Generator, r: int) -> np.ndarray:
    """A linear ramp in [-1, 1] across an r x r square, in a random direction."""
    angle = rng.uniform(0, 2 * math.pi)
    coords = (np.arange(r, dtype=np.float32) - (r - 1) / 2) / (r / 2)
    ramp = math.cos(angle) * coords[None, :] + math.sin(angle) * coords[:, None]
    return ramp / math.sqrt(2)


def _smooth_noise(rng: np.random.Generator, r: int, cells: int, shape=None) -> np.ndarray:
    """Zero-mean, roughly unit smooth noise (a random grid upsampled bicubically)."""
    shape = shape or (cells, cells)
    low = rng.standard_normal(shape, dtype=np.float32)
    return np.asarray(Image.fromarray(low, mode="F").resize((r, r), Image.BICUBIC))


def photo_paths() -> Tuple[str, ...]:
    """The photographs in PHOTO_DIR, by name: what walls may show (and what data made with
    them depends on)."""
    return tuple(sorted(glob.glob(os.path.join(PHOTO_DIR, "*.jpg"))))


@functools.lru_cache(maxsize=1)
def photographs() -> Tuple[np.ndarray, ...]:
    """The grey photographs in PHOTO_DIR, as floats in [0, 1]."""
    paths = photo_paths()
    if not paths:
        raise FileNotFoundError(f"no photographs (*.jpg) in {PHOTO_DIR}")
    return tuple(np.asarray(Image.open(p).convert("L"), np.float32) / 255.0 for p in paths)


def photo_shade(rng: np.random.Generator, r: int) -> np.ndarray:
    """Relative light and shade (zero mean) of a random patch of a real photograph, r x r:
    the natural detail, edges and noise that drawn textures lack."""
    photos = photographs()
    photo = photos[int(rng.integers(len(photos)))]
    h, w = photo.shape
    side = min(max(8, int(rng.uniform(*PHOTO_PATCH) * min(h, w))), h, w)
    y, x = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
    patch = np.asarray(Image.fromarray(photo[y:y + side, x:x + side], mode="F").resize(
        (r, r), Image.BILINEAR))
    patch = np.rot90(patch, int(rng.integers(4)))
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    relative = patch / max(float(patch.mean()), 0.05) - 1.0
    return (rng.uniform(*PHOTO_AMPLITUDE) * np.clip(relative, -0.9, 1.5)).astype(np.float32)


def texture(rng: np.random.Generator, r: int, colour: np.ndarray,
             weights: Tuple[float, ...] = None, photo_probability: float = 0.0) -> np.ndarray:
    """A surface (3 x r x r): plain, gradient, blotchy, siding/wood stripes, bricks, foliage,
    or (with ``photo_probability``) a patch of a real photograph in the surface's colour."""
    if photo_probability and rng.random() < photo_probability:
        return colour[:, None, None] * (1.0 + photo_shade(rng, r))[None]
    kind = pick(rng, weights or TEXTURE_WEIGHTS)
    shade = np.zeros((r, r), np.float32)
    if kind == 1:    # gradient
        shade += rng.uniform(0.05, 0.35) * ramp(rng, r)
    elif kind == 2:  # blotchy stucco, concrete, weathered paint
        shade += rng.uniform(0.03, 0.15) * _smooth_noise(rng, r, int(rng.integers(3, 9)))
    elif kind == 3:  # siding boards or wood grain along one axis
        horizontal = rng.random() < 0.7
        profile = rng.uniform(0.02, 0.1) * _smooth_noise(
            rng, r, 0, shape=(int(rng.integers(4, 24)), 1))
        period = rng.uniform(0.12, 0.4) * r
        pos = (np.arange(r) + rng.uniform(0, period)) % period
        lines = (pos < rng.uniform(0.5, 2.5)).astype(np.float32)
        profile = profile[:, :1] - rng.uniform(0.1, 0.35) * lines[:, None]
        shade += profile if horizontal else profile.T
    elif kind == 4:  # bricks or tiles: rows of blocks with mortar joints
        row_h = rng.uniform(0.12, 0.3) * r
        block_w = row_h * rng.uniform(1.5, 3.0)
        y = np.arange(r)[:, None] + rng.uniform(0, row_h)
        x = np.arange(r)[None, :] + rng.uniform(0, block_w)
        row = np.floor(y / row_h)
        x = x + (row % 2) * block_w / 2
        joint_w = rng.uniform(0.8, 2.5)
        mortar = ((y % row_h) < joint_w) | ((x % block_w) < joint_w)
        block_shade = rng.uniform(-0.08, 0.08, size=64).astype(np.float32)
        idx = ((row * 7 + np.floor(x / block_w)) % 64).astype(np.int64)
        shade += block_shade[idx]
        shade += np.where(mortar, rng.uniform(-0.35, 0.35), 0.0).astype(np.float32)
    elif kind == 5:  # foliage, gravel, rough render: strong fine-grained variation
        shade += rng.uniform(0.1, 0.35) * _smooth_noise(rng, r, int(rng.integers(10, 24)))
    grain = rng.uniform(0.0, 0.04)
    if grain > 0.01:
        shade += grain * rng.standard_normal((r, r), dtype=np.float32)
    shade += 1.0
    return colour[:, None, None] * shade[None]   # channels first: numpy is slow on x3 loops


def draw_clutter(rng: np.random.Generator, img: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Photo-like clutter: window frames, doors, pipes, wires, edges of other objects."""
    r = img.shape[1]
    pil = Image.fromarray(_to_uint8(img))
    draw = ImageDraw.Draw(pil)
    for _ in range(int(rng.integers(1, 5))):
        c = base * rng.uniform(0.3, 1.6) if rng.random() < 0.6 else _colour(rng, rng.random())
        fill = tuple(int(v) for v in np.clip(c * 255, 0, 255))
        kind = rng.integers(4)
        x0, y0 = rng.uniform(-0.3 * r, 1.1 * r, size=2)
        if kind == 0:    # rectangle (window, door, sign), often outside the centre
            w, h = rng.uniform(0.2, 1.0, size=2) * r
            draw.rectangle((x0, y0, x0 + w, y0 + h), fill=fill)
        elif kind == 1:  # straight line (wire, frame, edge)
            x1, y1 = rng.uniform(-0.3 * r, 1.3 * r, size=2)
            draw.line((x0, y0, x1, y1), fill=fill, width=int(rng.integers(1, max(2, r // 10))))
        elif kind == 2:  # blob (plant, lamp)
            w, h = rng.uniform(0.1, 0.6, size=2) * r
            draw.ellipse((x0, y0, x0 + w, y0 + h), fill=fill)
        else:            # polygon (roof, shadowed corner)
            pts = [tuple(p) for p in rng.uniform(-0.2 * r, 1.2 * r, size=(3, 2))]
            draw.polygon(pts, fill=fill)
    return np.asarray(pil, dtype=np.float32).transpose(2, 0, 1) * (1.0 / 255.0)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    """3 x r x r floats in [0, 1] -> r x r x 3 uint8."""
    out = np.clip(img * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)
    return np.ascontiguousarray(out.transpose(1, 2, 0))
