"""House numbers as ink: glyph masks of the fonts, and strings of digits with their
spacing, wobble and plate, in string coordinates."""
import functools
from typing import Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from svhn_tfx.components.generator import fonts as typefaces
from svhn_tfx.components.generator.settings import GeneratorSettings, pick

# Letters and signs that do not look like a digit (none of OoIliSsBZzGgqbTCUDJLaet),
# used for "no digit" images such as the "A" of "12A".
NEGATIVE_CHARS = "AEFHKMNPRVWXYfhkmnprvwxy#"

GLYPH_PX = 64             # font size at which glyph masks are rasterised (once, cached)
STROKE_STEP_PX = 2        # extra stroke width per "bolder" weight step at GLYPH_PX
WEIGHTS = (-1, 0, 0, 0, 1, 2)   # stroke weight steps: -1 thinner, 0 as designed, >0 bolder
WARP_CELLS = 3            # control points per side of a glyph's smooth random displacement


@functools.lru_cache(maxsize=None)
def glyph(font_name: str, char: str, weight: int) -> Tuple[np.ndarray, int]:
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


def warp_glyph(rng: np.random.Generator, mask: np.ndarray, top: int, amplitude: float):
    """The glyph bent by a smooth random displacement of up to ``amplitude`` of its height
    (an elastic distortion, Simard et al. 2003): painted and cut lettering is no font's
    exact outline. Returns the bent mask cropped to its ink, and its new top."""
    from scipy import ndimage
    h = mask.shape[0]
    pad = int(np.ceil(amplitude * h)) + 1
    padded = np.pad(mask, pad)
    shape = padded.shape
    field = [ndimage.zoom(rng.uniform(-1, 1, (WARP_CELLS, WARP_CELLS)) * amplitude * h,
                          (shape[0] / WARP_CELLS, shape[1] / WARP_CELLS), order=3,
                          mode="nearest", grid_mode=True)[:shape[0], :shape[1]]
             for _ in range(2)]
    rows, cols = np.indices(shape, dtype=np.float32)
    bent = ndimage.map_coordinates(padded.astype(np.float32), (rows + field[0], cols + field[1]),
                                   order=1, mode="constant")
    bent = np.clip(bent, 0, 255).astype(np.uint8)
    ink_rows, ink_cols = np.flatnonzero(bent.any(1)), np.flatnonzero(bent.any(0))
    if not len(ink_rows):
        return mask, top
    return (bent[ink_rows[0]:ink_rows[-1] + 1, ink_cols[0]:ink_cols[-1] + 1],
            top - pad + int(ink_rows[0]))


def compose_string(rng: np.random.Generator, settings: GeneratorSettings, chars: str,
                    font: str, weight: int, plate: bool, frame: bool):
    """Rasterises a house number (and its plate) in string coordinates.

    Returns the ink and plate images ("L"), the ink boxes of the characters and the
    height of a "0" in this font and weight (the reference for spacing).
    """
    glyphs = [glyph(font, c, weight) for c in chars]
    if settings.glyph_warp:
        glyphs = [warp_glyph(rng, g, top, settings.glyph_warp) for g, top in glyphs]
    ref_mask, ref_top = glyph(font, "0", weight)
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


def pick_chars(rng: np.random.Generator, settings: GeneratorSettings, centre_char: str,
                neighbour_pool: str) -> Tuple[str, int]:
    """A house number containing ``centre_char``, and the position of that character."""
    if settings.neighbours:
        length = pick(rng, settings.number_length_weights) + 1
    else:
        length = 1
    pos = int(rng.integers(length))
    chars = [neighbour_pool[int(k)] for k in rng.integers(len(neighbour_pool), size=length)]
    chars[pos] = centre_char
    return "".join(chars), pos
