"""SVHN-like training images made from scratch: the project's default data source.

Real SVHN cannot be downloaded here, so the default training set comes from this
generator. It imitates how SVHN's 32x32 "cropped digits" were made: a house number
(1-4 digits, one font, hand-placed spacing) sits on a wall or a plate, the labelled
digit's bounding box is widened to a square with some margin and jitter, and that
square is resized to ``size`` pixels, so neighbouring digits are cut at the left and
right edges. On top come what street photos do to it: rotation, shear, perspective,
uneven light and hard shadows, colour casts, blur, low source resolution, sensor noise
and JPEG artefacts.

"No digit" images (label ``schema.NO_DIGIT``) are drawn with the same colours, walls,
plates, lighting and camera effects, so only the content of the crop tells them apart:
plain and textured walls, plate edges and frames, non-digit shapes, letters (also the
"A" of "12A" with digits cut at its sides), digits cut at the crop border with the
centre empty, and close-ups of a fragment of a digit.

Image ``i`` of ``generate(n, seed)`` depends only on ``np.random.default_rng([seed, i])``,
so any shard can be generated on its own and results are reproducible. Fonts are the
ones in fonts.py (matplotlib's and 119 Google Fonts families from PyPI); nothing is downloaded.
"""
import bisect
import colorsys
import contextlib
import dataclasses
import functools
import io
import itertools
import math
import multiprocessing
import os
from typing import Dict, Iterator, Optional, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

import schema
from components.data import fonts as typefaces

# Letters and signs that do not look like a digit (none of OoIliSsBZzGgqbTCUDJLaet),
# used for "no digit" images such as the "A" of "12A".
NEGATIVE_CHARS = "AEFHKMNPRVWXYfhkmnprvwxy#"

GLYPH_PX = 64             # font size at which glyph masks are rasterised (once, cached)
STROKE_STEP_PX = 2        # extra stroke width per "bolder" weight step at GLYPH_PX
WEIGHTS = (-1, 0, 0, 0, 1, 2)   # stroke weight steps: -1 thinner, 0 as designed, >0 bolder
# A generated eval split uses the train seed + EVAL_SEED_OFFSET: never the same images.
EVAL_SEED_OFFSET = 1000
NEGATIVE_KINDS = ("background", "shapes", "letters", "partial", "zoom")
PARTIAL_DIRECTIONS = ("left", "right", "above", "below")   # where the crop lies, from the number
PARTIAL_DIRECTION_WEIGHTS = (0.3, 0.3, 0.2, 0.2)
LOW_CONTRAST = (0.1, 0.22)   # luminance difference digit vs surface of low-contrast images
MAX_CONTRAST = 0.85
HUE_RANGES = ((-0.03, 0.17), (0.52, 0.7), (0.2, 0.45), (0.0, 1.0))  # warm, blue, green, any
HUE_WEIGHTS = (0.5, 0.2, 0.12, 0.18)
MOTION_BLUR_PROBABILITY = 0.06
BACKGROUND_CLUTTER_PROBABILITY = 0.75   # clutter in "no digit" crops of bare background
TONE_CONTRAST = (0.8, 1.2)    # global contrast change of the whole photo
TONE_GAMMA = (0.8, 1.25)
MAX_LEGIBILITY_GAIN = 3.0
MIN_INK_CONTRAST = 0.1   # final luminance difference ink vs surroundings, at least
GENERATE_CHUNK = 250     # images per task when rendering in several processes
# plain, gradient, blotchy, stripes, bricks, foliage
TEXTURE_WEIGHTS = (0.25, 0.2, 0.25, 0.16, 0.1, 0.04)
# walls of "no digit" crops that show no number at all: busier, as in street photos
BUSY_TEXTURE_WEIGHTS = (0.1, 0.1, 0.2, 0.22, 0.18, 0.2)


@dataclasses.dataclass(frozen=True)
class GeneratorSettings:
    """Everything that shapes the generated images. Sizes given as fractions are of the
    crop side unless noted; probabilities are per image."""
    size: int = 32                        # output square side in pixels
    supersample: int = 2                  # render at size*supersample, then downscale
    no_digit_fraction: float = 0.15       # share of label-10 ("no digit") images
    jpeg_fraction: float = 0.2            # share stored as JPEG (the rest as PNG)
    jpeg_quality: Tuple[int, int] = (35, 95)
    neighbours: bool = True               # house numbers of several digits, cut at the crop edges
    # (independent of it, "partial" no-digit images show a digit cut at the border)
    number_length_weights: Tuple[float, ...] = (0.2, 0.38, 0.32, 0.1)  # 1, 2, 3, 4 digits
    distortions: bool = True              # rotation, shear, perspective, blur, low res, noise
    fonts: Tuple[Tuple[str, float], ...] = dataclasses.field(
        default_factory=typefaces.default_fonts)   # (face, pick weight), see fonts.py
    digit_height: Tuple[float, float] = (0.6, 1.0)   # labelled digit's larger box side / crop side
    # (SVHN widens the annotated box to a square: the digit spans nearly the whole crop)
    centre_jitter: float = 0.06           # std of the crop centre offset
    box_padding: Tuple[float, float] = (0.0, 0.12)   # looseness of the annotated box, of height
    digit_gap: Tuple[float, float] = (-0.05, 0.25)    # space between digits (of digit height)
    aspect_stretch: Tuple[float, float] = (0.75, 1.3)  # condensed .. extended lettering
    max_rotation_deg: float = 12.0
    max_shear: float = 0.2
    max_perspective: float = 0.12         # projective term, per digit height
    plate_probability: float = 0.5        # digits on a plate (else painted/mounted on the wall)
    frame_probability: float = 0.3        # a plate has a border line in the digit colour
    shadow_probability: float = 0.25      # drop shadow of raised digits
    outline_probability: float = 0.1      # digits outlined in a third colour
    low_contrast_fraction: float = 0.15   # digit/background luminance difference in LOW_CONTRAST
    hard_shadow_probability: float = 0.2  # a cast shadow edge across the crop
    clutter_probability: float = 0.35     # photo-like clutter (windows, wires, edges) behind
    blur_sigma: float = 1.5               # max gaussian blur sigma, output pixels
    low_res_probability: float = 0.45     # image comes from a smaller source region, upsampled
    min_source_fraction: float = 0.5      # smallest source resolution, of ``size``
    noise_sigma: float = 9.0              # max sensor noise, of 255
    negative_weights: Tuple[float, ...] = (0.24, 0.18, 0.16, 0.36, 0.06)  # NEGATIVE_KINDS

    def __post_init__(self):
        if self.size < 8 or self.supersample < 1:
            raise ValueError(f"size must be >= 8 and supersample >= 1, got {self.size}, "
                             f"{self.supersample}")
        for name in ("no_digit_fraction", "jpeg_fraction", "plate_probability",
                     "frame_probability", "shadow_probability", "outline_probability",
                     "low_contrast_fraction", "hard_shadow_probability",
                     "clutter_probability", "low_res_probability", "min_source_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        lo, hi = self.digit_height
        if not 0.1 <= lo <= hi <= 1.0:
            raise ValueError(f"digit_height must satisfy 0.1 <= low <= high <= 1, got "
                             f"{self.digit_height}")
        if not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise ValueError(f"jpeg_quality must be a range within 1-100, got {self.jpeg_quality}")
        for name, weights, count in (("number_length_weights", self.number_length_weights, None),
                                     ("negative_weights", self.negative_weights,
                                      len(NEGATIVE_KINDS)),
                                     ("fonts", [w for _, w in self.fonts], None)):
            if (count is not None and len(weights) != count) or not weights or \
                    min(weights) < 0 or sum(weights) <= 0:
                raise ValueError(f"{name} needs non-negative weights with a positive sum"
                                 + (f", one per kind {NEGATIVE_KINDS}" if count else ""))


# ---------------------------------------------------------------------------- glyphs

@functools.lru_cache(maxsize=None)
def _glyph(font_name: str, char: str, weight: int) -> Tuple[np.ndarray, int]:
    """(ink mask cropped to its box, box top relative to the baseline) at GLYPH_PX."""
    stroke = max(weight, 0) * STROKE_STEP_PX
    pad = GLYPH_PX // 2 + stroke
    img = Image.new("L", (2 * GLYPH_PX + 2 * pad, 2 * GLYPH_PX + 2 * pad), 0)
    baseline = pad + GLYPH_PX
    ImageDraw.Draw(img).text((pad, baseline), char, font=typefaces.load(font_name, GLYPH_PX),
                             fill=255,
                             anchor="ls", stroke_width=stroke, stroke_fill=255)
    if weight < 0:
        img = img.filter(ImageFilter.MinFilter(3))
    box = img.getbbox()
    if box is None:
        raise ValueError(f"font {font_name} has no visible glyph for {char!r}")
    return np.asarray(img.crop(box)), box[1] - baseline


def _pick(rng: np.random.Generator, weights) -> int:
    """Index drawn with the given (unnormalised) weights; cheaper than rng.choice(p=...)."""
    cum = _cumulative(tuple(weights))
    return min(bisect.bisect_right(cum, rng.random() * cum[-1]), len(cum) - 1)


@functools.lru_cache(maxsize=None)
def _cumulative(weights: Tuple[float, ...]) -> Tuple[float, ...]:
    return tuple(itertools.accumulate(float(w) for w in weights))


# ---------------------------------------------------------------------------- colours

def _luma(rgb) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _hue(rng: np.random.Generator) -> float:
    """Hues of houses: mostly warm (brick, wood, sand), then blue, green, anything."""
    return (rng.uniform(*HUE_RANGES[_pick(rng, HUE_WEIGHTS)])) % 1.0


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


def _palette(rng: np.random.Generator, settings: GeneratorSettings, plate: bool
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


# ---------------------------------------------------------------------------- backgrounds

def _ramp(rng: np.random.Generator, r: int) -> np.ndarray:
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


def _texture(rng: np.random.Generator, r: int, colour: np.ndarray,
             weights: Tuple[float, ...] = None) -> np.ndarray:
    """A surface (3 x r x r): plain, gradient, blotchy, siding/wood stripes, bricks, foliage."""
    kind = _pick(rng, weights or TEXTURE_WEIGHTS)
    shade = np.zeros((r, r), np.float32)
    if kind == 1:    # gradient
        shade += rng.uniform(0.05, 0.35) * _ramp(rng, r)
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


def _draw_clutter(rng: np.random.Generator, img: np.ndarray, base: np.ndarray) -> np.ndarray:
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


# ---------------------------------------------------------------------------- geometry

def _matmul(a, b):
    """3x3 matrix product on nested tuples (numpy's overhead dominates at this size)."""
    return tuple(tuple(sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3))
                 for i in range(3))


def _inverse3(m):
    """Inverse of a 3x3 matrix given as nested tuples (by cofactors)."""
    (a, b, c), (d, e, f), (g, h, i) = m
    co = ((e * i - f * h, c * h - b * i, b * f - c * e),
          (f * g - d * i, a * i - c * g, c * d - a * f),
          (d * h - e * g, b * g - a * h, a * e - b * d))
    det = a * co[0][0] + b * co[1][0] + c * co[2][0]
    return tuple(tuple(v / det for v in row) for row in co)


def _homography(rng: np.random.Generator, settings: GeneratorSettings, centre, ref_h: float):
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
    return _matmul(persp, _matmul(rot_shear, m))


def _project(h, box) -> Tuple[float, float, float, float]:
    """Axis-aligned scene box of a string-coordinate box mapped by homography h."""
    x0, y0, x1, y1 = box
    xs, ys = [], []
    for x, y in ((x0, y0), (x1, y0), (x0, y1), (x1, y1)):
        w = h[2][0] * x + h[2][1] * y + h[2][2]
        xs.append((h[0][0] * x + h[0][1] * y + h[0][2]) / w)
        ys.append((h[1][0] * x + h[1][1] * y + h[1][2]) / w)
    return min(xs), min(ys), max(xs), max(ys)


# ---------------------------------------------------------------------------- scene

def _compose_string(rng: np.random.Generator, settings: GeneratorSettings, chars: str,
                    font: str, weight: int, plate: bool, frame: bool):
    """Rasterises a house number (and its plate) in string coordinates.

    Returns the ink and plate images ("L"), the ink boxes of the characters and the
    height of a "0" in this font and weight (the reference for spacing).
    """
    glyphs = [_glyph(font, c, weight) for c in chars]
    ref_mask, ref_top = _glyph(font, "0", weight)
    ref_h = ref_mask.shape[0]
    gaps = rng.uniform(*settings.digit_gap, size=len(chars)) * ref_h
    wobble = rng.uniform(-0.04, 0.04, size=len(chars)) * ref_h * (rng.random() < 0.3)
    pad_x = rng.uniform(0.15, 0.7) * ref_h
    pad_y = rng.uniform(0.1, 0.45) * ref_h
    margin = int(ref_h * 0.8) + 4
    tops = [top + int(round(wob)) for (_, top), wob in zip(glyphs, wobble)]
    top_min = min(min(tops), ref_top)
    bottom = max(t + g.shape[0] for (g, _), t in zip(glyphs, tops))
    width = sum(g.shape[1] for g, _ in glyphs) + int(max(gaps[:-1].sum(), 0)) + 2 * margin
    height = bottom - top_min + 2 * margin
    ink = np.zeros((height, width), np.uint8)
    boxes, x = [], float(margin)
    for (g, _), top, gap in zip(glyphs, tops, gaps):
        xi, y = int(round(x)), margin + top - top_min
        h, w = g.shape
        np.maximum(ink[y:y + h, xi:xi + w], g, out=ink[y:y + h, xi:xi + w])
        boxes.append((xi, y, xi + w, y + h))
        x = max(x + w + gap, float(margin))
    plate_img, ink_img = None, Image.fromarray(ink)
    if plate:
        plate_img = Image.new("L", (width, height), 0)
        x0 = min(b[0] for b in boxes) - pad_x
        x1 = max(b[2] for b in boxes) + pad_x
        y0 = min(b[1] for b in boxes) - pad_y
        y1 = max(b[3] for b in boxes) + pad_y
        radius = rng.uniform(0, 0.3) * ref_h
        ImageDraw.Draw(plate_img).rounded_rectangle((x0, y0, x1, y1), radius, fill=255)
        if frame:
            inset = rng.uniform(0.03, 0.12) * ref_h
            line = max(1, int(rng.uniform(0.03, 0.1) * ref_h))
            ImageDraw.Draw(ink_img).rounded_rectangle(
                (x0 + inset, y0 + inset, x1 - inset, y1 - inset), max(radius - inset, 0),
                outline=255, width=line)
    return ink_img, plate_img, boxes, ref_h


def _pick_chars(rng: np.random.Generator, settings: GeneratorSettings, centre_char: str,
                neighbour_pool: str) -> Tuple[str, int]:
    """A house number containing ``centre_char``, and the position of that character."""
    if settings.neighbours:
        length = _pick(rng, settings.number_length_weights) + 1
    else:
        length = 1
    pos = int(rng.integers(length))
    chars = [neighbour_pool[int(k)] for k in rng.integers(len(neighbour_pool), size=length)]
    chars[pos] = centre_char
    return "".join(chars), pos


def _string_scene(rng, settings, r, chars, ref_index, crop_mode, plate, frame):
    """Ink and plate masks (r x r float) for a string cropped as ``crop_mode`` says."""
    font = settings.fonts[_pick(rng, [w for _, w in settings.fonts])][0]
    weight = WEIGHTS[int(rng.integers(len(WEIGHTS)))]
    bold = typefaces.is_bold(font)
    if weight < 0 and not bold:
        weight = 0  # thinning a regular face leaves hairlines that vanish at 32 px
    if weight > 1 and bold:
        weight = 1  # emboldening a bold face fills the counters of 8, 6, 9, 0
    ink_img, plate_img, boxes, ref_h = _compose_string(
        rng, settings, chars, font, weight, plate, frame)
    bx0, by0, bx1, by1 = boxes[ref_index]
    g = _homography(rng, settings, ((bx0 + bx1) / 2, (by0 + by1) / 2), ref_h)
    x0, y0, x1, y1 = _project(g, boxes[ref_index])
    pad = rng.uniform(*settings.box_padding) * (y1 - y0)
    x0, y0, x1, y1 = x0 - pad / 2, y0 - pad, x1 + pad / 2, y1 + pad
    w, h = x1 - x0, y1 - y0
    frac = settings.digit_height[0] + (settings.digit_height[1] - settings.digit_height[0]) * \
        rng.beta(2.2, 1.8)
    side = max(w, h) / frac
    # annotation noise moves the crop, but it keeps (nearly all of) the box inside
    jitter = rng.normal(0, settings.centre_jitter, size=2) * side
    slack_x, slack_y = (side - w) / 2 + 0.03 * side, (side - h) / 2 + 0.03 * side
    cx = (x0 + x1) / 2 + min(max(jitter[0], -slack_x), slack_x)
    cy = (y0 + y1) / 2 + min(max(jitter[1], -slack_y), slack_y)
    if crop_mode in ("left", "right", "above", "below"):
        # the crop lies beside (or above/below) the number: only a sliver of the end
        # digit(s) shows at one border and the centre holds no digit
        visible = rng.uniform(0.05, 0.4)
        side = max(w, h) / rng.uniform(0.45, 0.85)
        if crop_mode == "right":
            cx = x1 - visible * w + side / 2
        elif crop_mode == "left":
            cx = x0 + visible * w - side / 2
        else:
            all_boxes = [_project(g, b) for b in boxes]
            cx = rng.uniform(min(b[0] for b in all_boxes), max(b[2] for b in all_boxes))
            if crop_mode == "below":
                cy = max(b[3] for b in all_boxes) - visible * h + side / 2
            else:
                cy = min(b[1] for b in all_boxes) + visible * h - side / 2
    elif crop_mode == "zoom":
        side = h * rng.uniform(0.15, 0.3)  # strokes much wider than any digit's
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
    crop = ((side / r, 0.0, cx - side / 2), (0.0, side / r, cy - side / 2), (0.0, 0.0, 1.0))
    m = _matmul(_inverse3(g), crop)
    coeffs = tuple(v / m[2][2] for row in m for v in row)[:8]
    ink = _warp(ink_img, r, coeffs)
    plate_mask = _warp(plate_img, r, coeffs) if plate else np.zeros((r, r), np.float32)
    return ink, plate_mask


def _warp(img: Image.Image, r: int, coeffs) -> np.ndarray:
    out = img.transform((r, r), Image.PERSPECTIVE, coeffs, resample=Image.BILINEAR)
    return np.asarray(out, dtype=np.float32) * (1.0 / 255.0)


def _shapes(rng: np.random.Generator, r: int) -> np.ndarray:
    """Non-digit marks in the digit colour: bars, discs, boxes, arcs, dots, hatching."""
    img = Image.new("L", (r, r), 0)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(1, 4))):
        kind = rng.integers(6)
        cx, cy = rng.uniform(0.1, 0.9, size=2) * r
        size = rng.uniform(0.15, 0.7) * r
        width = max(1, int(rng.uniform(0.04, 0.16) * r))
        if kind == 0:    # bar or line
            a = rng.uniform(0, math.pi)
            if abs(a - math.pi / 2) < 0.5 and abs(cx - r / 2) < 0.3 * r:
                # an upright bar through the middle is what a "1" looks like at 32 px
                cx = r / 2 + math.copysign(rng.uniform(0.3, 0.45) * r, cx - r / 2)
            dx, dy = math.cos(a) * size, math.sin(a) * size
            draw.line((cx - dx, cy - dy, cx + dx, cy + dy), fill=255, width=width)
        elif kind == 1:  # filled disc or lamp
            draw.ellipse((cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2), fill=255)
        elif kind == 2:  # rectangle, filled or outlined
            w, h = rng.uniform(0.2, 0.9, size=2) * r
            fill = 255 if rng.random() < 0.5 else None
            draw.rectangle((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), fill=fill,
                           outline=255, width=width)
        elif kind == 3:  # arc (part of a ring, not a closed "0")
            start = rng.uniform(0, 360)
            draw.arc((cx - size, cy - size, cx + size, cy + size), start,
                     start + rng.uniform(60, 200), fill=255, width=width)
        elif kind == 4:  # screws / dots
            for _ in range(int(rng.integers(2, 6))):
                x, y = rng.uniform(0, r, size=2)
                d = rng.uniform(0.03, 0.08) * r
                draw.ellipse((x - d, y - d, x + d, y + d), fill=255)
        else:            # hatching, railings
            a = rng.uniform(0, math.pi)
            step = rng.uniform(0.12, 0.3) * r
            dx, dy = math.cos(a) * 2 * r, math.sin(a) * 2 * r
            for k in range(-6, 7):
                ox, oy = -math.sin(a) * k * step, math.cos(a) * k * step
                draw.line((cx + ox - dx, cy + oy - dy, cx + ox + dx, cy + oy + dy),
                          fill=255, width=max(1, width // 2))
    return np.asarray(img, dtype=np.float32) / 255.0


def _plate_patch(rng: np.random.Generator, r: int) -> np.ndarray:
    """A plate, sign or door panel in canvas coordinates: an edge crossing the crop or all of it."""
    img = Image.new("L", (r, r), 0)
    if rng.random() < 0.3:
        return np.ones((r, r), np.float32)
    cx, cy = rng.uniform(-0.3, 1.3, size=2) * r
    w, h = rng.uniform(0.5, 2.0, size=2) * r
    a = rng.uniform(-0.2, 0.2)
    corners = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
    pts = [(cx + x * math.cos(a) - y * math.sin(a), cy + x * math.sin(a) + y * math.cos(a))
           for x, y in corners]
    ImageDraw.Draw(img).polygon(pts, fill=255)
    return np.asarray(img, dtype=np.float32) / 255.0


def _scene(rng: np.random.Generator, settings: GeneratorSettings, label: int):
    """Ink mask, plate mask, whether a plate is present, and what kind of image it is."""
    r = settings.size * settings.supersample
    plate = rng.random() < settings.plate_probability
    frame = plate and rng.random() < settings.frame_probability
    digits = "0123456789"
    if label != schema.NO_DIGIT:
        chars, pos = _pick_chars(rng, settings, digits[label], digits)
        ink, plate_mask = _string_scene(rng, settings, r, chars, pos, "digit", plate, frame)
        return ink, plate_mask, plate, "digit"
    kind = NEGATIVE_KINDS[_pick(rng, settings.negative_weights)]
    if kind == "letters":
        centre = NEGATIVE_CHARS[int(rng.integers(len(NEGATIVE_CHARS)))]
        pool = digits if rng.random() < 0.6 else NEGATIVE_CHARS
        chars, pos = _pick_chars(rng, settings, centre, pool)
        ink, plate_mask = _string_scene(rng, settings, r, chars, pos, "digit", plate, frame)
    elif kind == "partial":
        chars, _ = _pick_chars(rng, settings, digits[int(rng.integers(10))], digits)
        direction = PARTIAL_DIRECTIONS[_pick(rng, PARTIAL_DIRECTION_WEIGHTS)]
        pos = {"left": 0, "right": len(chars) - 1}.get(direction, int(rng.integers(len(chars))))
        ink, plate_mask = _string_scene(rng, settings, r, chars, pos, direction, plate, frame)
    elif kind == "zoom":
        chars, pos = _pick_chars(rng, settings, digits[int(rng.integers(10))], digits)
        ink, plate_mask = _string_scene(rng, settings, r, chars, pos, "zoom", plate, frame)
    else:
        plate_mask = _plate_patch(rng, r) if plate else np.zeros((r, r), np.float32)
        ink = _shapes(rng, r) if kind == "shapes" else np.zeros((r, r), np.float32)
    return ink, plate_mask, plate, kind


# ---------------------------------------------------------------------------- rendering

def _shift(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    out = np.zeros_like(mask)
    h, w = mask.shape
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        mask[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a (2 radius + 1) square, separably with shifted maxima."""
    out = mask.copy()
    for k in range(1, radius + 1):
        out[k:] |= mask[:-k]
        out[:-k] |= mask[k:]
    rows = out.copy()
    for k in range(1, radius + 1):
        out[:, k:] |= rows[:, :-k]
        out[:, :-k] |= rows[:, k:]
    return out


def _legible(pixels: np.ndarray, ink: np.ndarray, size: int) -> np.ndarray:
    """Stretches contrast where ink (digits, letters, marks) and its surroundings ended up
    less than MIN_INK_CONTRAST apart in the output: shadows, dark plates, gamma and blur
    can eat the designed contrast until a labelled digit is no longer there to see."""
    if ink.max() < 0.5:
        return pixels
    ss = ink.shape[0] // size
    small = ink.reshape(size, ss, size, ss).mean(axis=(1, 3))
    inside = small > 0.55
    near = _dilate(inside, 2)   # within 2 output pixels of the ink
    around = near & (small < 0.05)
    if not inside.any() or not around.any():
        return pixels
    luma = pixels @ np.array([0.299, 0.587, 0.114], np.float32)
    a, b = float(luma[inside].mean()), float(luma[around].mean())
    diff = abs(a - b) / 255.0
    if diff >= MIN_INK_CONTRAST:
        return pixels
    # stretch about the darker side in dark images, the brighter one in bright images,
    # so the stretch does not vanish into clipping
    pivot = min(a, b) if (a + b) / 2 < 128 else max(a, b)
    gain = min(MIN_INK_CONTRAST / max(diff, 1e-3), MAX_LEGIBILITY_GAIN)
    return np.clip((pixels - pivot) * gain + pivot + 0.5, 0, 255).astype(np.uint8)


def _render(rng: np.random.Generator, settings: GeneratorSettings, label: int):
    """(uint8 size x size x 3 pixels, ink mask at render resolution, kind of image)."""
    r = settings.size * settings.supersample
    ss = settings.supersample
    ink, plate_mask, plate, kind = _scene(rng, settings, label)
    colours = _palette(rng, settings, plate)

    # surfaces (channels first): wall everywhere, plate where the plate mask is
    img = _texture(rng, r, colours["wall"], BUSY_TEXTURE_WEIGHTS
                   if kind in ("background", "partial") else TEXTURE_WEIGHTS)
    # a crop of bare background is mostly a crop of something busy in a street photo
    clutter = BACKGROUND_CLUTTER_PROBABILITY if kind == "background" else \
        settings.clutter_probability
    if rng.random() < clutter:
        img = _draw_clutter(rng, img, colours["wall"])
    if plate:
        img += (_texture(rng, r, colours["surface"]) - img) * plate_mask[None]

    # raised digits cast a shadow; some are outlined
    if rng.random() < settings.shadow_probability:
        dx, dy = rng.integers(1, 3 * ss + 1, size=2) * (2 * rng.integers(2, size=2) - 1)
        shadow = _shift(ink, int(dx), int(dy)) * (1.0 - ink)
        img *= (1.0 - rng.uniform(0.3, 0.7) * shadow)[None]
    if rng.random() < settings.outline_probability:
        grown = Image.fromarray((ink * 255).astype(np.uint8)).filter(
            ImageFilter.MaxFilter(2 * int(rng.integers(1, ss + 1)) + 1))
        outline = np.asarray(grown, dtype=np.float32) * (1.0 / 255.0)
        img += (colours["outline"][:, None, None] - img) * outline[None]
    fg = colours["fg"][:, None, None] * (1.0 + rng.uniform(-0.2, 0.2) * _ramp(rng, r))[None]
    img += (fg - img) * ink[None]

    # light: gradient, a hard cast shadow, glare; then exposure, contrast, white balance
    # and gamma as one lookup table per channel on the quantised image
    light = 1.0 + rng.uniform(-0.35, 0.35) * _ramp(rng, r)
    if rng.random() < settings.hard_shadow_probability:
        edge = _ramp(rng, r) - rng.uniform(-0.5, 0.5)
        light *= 1.0 - rng.uniform(0.3, 0.7) * 0.5 * (1.0 + np.tanh(edge / rng.uniform(0.01, 0.15)))
    if rng.random() < 0.08:
        glare = np.exp(-((_ramp(rng, r) - rng.uniform(-0.5, 0.5)) / 0.3) ** 2)
        img += rng.uniform(0.2, 0.6) * glare[None]
    img *= light[None]
    mean = float(img.mean())
    levels = np.arange(256, dtype=np.float64) / 255.0
    tone = (levels - mean) * rng.uniform(*TONE_CONTRAST) + mean + rng.uniform(-0.08, 0.08)
    gains = rng.uniform(0.9, 1.1, size=3)
    lut = np.clip(tone[None, :] * gains[:, None], 0.0, 1.0) ** rng.uniform(*TONE_GAMMA)
    lut = (lut * 255.0 + 0.5).astype(np.uint8)
    quantised = np.clip(img * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)
    pil = Image.fromarray(np.stack([lut[c][quantised[c]] for c in range(3)], axis=-1))

    # camera: defocus or motion blur, small source region upsampled, sensor noise
    size = settings.size
    if settings.distortions:
        # one main softness (defocus or motion blur), the smaller source resolution only
        # lightly on top of a strong blur: stacked they leave nothing to read
        sigma = abs(rng.normal(0, settings.blur_sigma / 2))
        if rng.random() < MOTION_BLUR_PROBABILITY:
            kernel = np.zeros((5, 5))
            if rng.random() < 0.5:
                kernel[2, :] = 1
            else:
                kernel[:, 2] = 1
            pil = pil.filter(ImageFilter.Kernel((5, 5), kernel.ravel().tolist(), scale=5))
            sigma = 0.0
        if rng.random() < settings.low_res_probability:
            lowest = settings.min_source_fraction + (1 - settings.min_source_fraction) * min(
                sigma / settings.blur_sigma, 1.0) * 0.6
            small = int(round(size * rng.uniform(lowest, 1.0)))
            pil = pil.resize((small, small), Image.BILINEAR)
        pil = pil.resize((size, size), Image.BICUBIC if rng.random() < 0.7 else Image.BILINEAR)
        if sigma > 0.15:  # defocus, at output scale (4x cheaper than at render scale)
            pil = pil.filter(ImageFilter.GaussianBlur(sigma))
        pixels = _legible(np.asarray(pil), ink, size)
        noise = settings.noise_sigma * rng.random() ** 2  # mostly mild
        if noise > 0.5:
            out = pixels.astype(np.float32)
            out += noise * rng.standard_normal((size, size, 1), dtype=np.float32)
            out += 0.4 * noise * rng.standard_normal((size, size, 3), dtype=np.float32)
            pixels = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    else:
        pixels = _legible(np.asarray(pil.resize((size, size), Image.BICUBIC)), ink, size)
    return pixels, ink, kind


def render_example(rng: np.random.Generator, settings: GeneratorSettings = GeneratorSettings(),
                   label: int = 0) -> np.ndarray:
    """One image (uint8, size x size x 3) of digit ``label`` (0-9) or of no digit (10)."""
    if not 0 <= label <= schema.MAX_LABEL:
        raise ValueError(f"label {label} is not 0-9 or {schema.NO_DIGIT} (no digit)")
    return _render(rng, settings, label)[0]


def draw_label(rng: np.random.Generator, settings: GeneratorSettings) -> int:
    """The label of the next image: "no digit" with its share, else a uniform digit."""
    if rng.random() < settings.no_digit_fraction:
        return schema.NO_DIGIT
    return int(rng.integers(schema.NUM_DIGITS))


def _encode(rng: np.random.Generator, settings: GeneratorSettings, pixels: np.ndarray,
           as_jpeg: bool) -> bytes:
    if not as_jpeg:
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG")
        return buf.getvalue()
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=int(rng.integers(
        settings.jpeg_quality[0], settings.jpeg_quality[1] + 1)))
    return buf.getvalue()


def generate_one(seed: int, index: int, settings: GeneratorSettings = GeneratorSettings()
                 ) -> Tuple[bytes, int]:
    """(encoded image, label) of image ``index``; depends only on (seed, index, settings)."""
    rng = np.random.default_rng([seed, index])
    label = draw_label(rng, settings)
    as_jpeg = rng.random() < settings.jpeg_fraction
    pixels = render_example(rng, settings, label)
    return _encode(rng, settings, pixels, as_jpeg), label


def _generate_chunk(args) -> list:
    seed, start, n, settings = args
    return [generate_one(seed, i, settings) for i in range(start, start + n)]


def generate(n: int, seed: int, settings: GeneratorSettings = GeneratorSettings(), *,
             start: int = 0, workers: int = 1) -> Iterator["Record"]:
    """Yields ``n`` records, images ``start`` .. ``start + n - 1`` of this seed, in order.

    ``workers`` > 1 renders in that many processes (the same images: each depends only on
    its index)."""
    # imported here so the renderer itself does not load TensorFlow (records.py does)
    from components.data.records import Record
    chunks = [(seed, s, min(GENERATE_CHUNK, start + n - s), settings)
              for s in range(start, start + n, GENERATE_CHUNK)]
    parallel = workers > 1 and len(chunks) > 1
    # spawn, not fork: the parent may have TensorFlow's threads running
    with multiprocessing.get_context("spawn").Pool(workers) if parallel \
            else contextlib.nullcontext() as pool:
        rendered = pool.imap(_generate_chunk, chunks) if parallel else map(_generate_chunk, chunks)
        for i, (image, label) in enumerate(itertools.chain.from_iterable(rendered), start):
            yield Record(where=f"synthetic(seed={seed})#{i}", image=image, label=label)
