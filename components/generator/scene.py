"""What the crop shows: a labelled digit in its house number, cropped as SVHN did, or one
of the "no digit" kinds (bare wall, marks, letters, digits cut at the border, a close-up)."""
import math

import numpy as np
from PIL import Image, ImageDraw

from svhn_tfx import schema
from svhn_tfx.components.generator import fonts as typefaces
from svhn_tfx.components.generator.geometry import homography, inverse3, matmul, project, warp
from svhn_tfx.components.generator.settings import NEGATIVE_KINDS, GeneratorSettings, pick
from svhn_tfx.components.generator.text import NEGATIVE_CHARS, WEIGHTS, compose_string, pick_chars

PARTIAL_DIRECTIONS = ("left", "right", "above", "below")   # where the crop lies, from the number
PARTIAL_DIRECTION_WEIGHTS = (0.3, 0.3, 0.2, 0.2)


def _string_scene(rng, settings, r, chars, ref_index, crop_mode, plate, frame):
    """Ink and plate masks (r x r float) for a string cropped as ``crop_mode`` says."""
    font = settings.fonts[pick(rng, [w for _, w in settings.fonts])][0]
    weight = WEIGHTS[int(rng.integers(len(WEIGHTS)))]
    bold = typefaces.is_bold(font)
    if weight < 0 and not bold:
        weight = 0  # thinning a regular face leaves hairlines that vanish at 32 px
    if weight > 1 and bold:
        weight = 1  # emboldening a bold face fills the counters of 8, 6, 9, 0
    ink_img, plate_img, boxes, ref_h = compose_string(
        rng, settings, chars, font, weight, plate, frame)
    bx0, by0, bx1, by1 = boxes[ref_index]
    g = homography(rng, settings, ((bx0 + bx1) / 2, (by0 + by1) / 2), ref_h)
    x0, y0, x1, y1 = project(g, boxes[ref_index])
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
            all_boxes = [project(g, b) for b in boxes]
            cx = rng.uniform(min(b[0] for b in all_boxes), max(b[2] for b in all_boxes))
            if crop_mode == "below":
                cy = max(b[3] for b in all_boxes) - visible * h + side / 2
            else:
                cy = min(b[1] for b in all_boxes) + visible * h - side / 2
    elif crop_mode == "zoom":
        side = h * rng.uniform(0.15, 0.3)  # strokes much wider than any digit's
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
    crop = ((side / r, 0.0, cx - side / 2), (0.0, side / r, cy - side / 2), (0.0, 0.0, 1.0))
    m = matmul(inverse3(g), crop)
    coeffs = tuple(v / m[2][2] for row in m for v in row)[:8]
    ink = warp(ink_img, r, coeffs)
    plate_mask = warp(plate_img, r, coeffs) if plate else np.zeros((r, r), np.float32)
    return ink, plate_mask


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


def content(rng: np.random.Generator, settings: GeneratorSettings, label: int):
    """Ink mask, plate mask, whether a plate is present, and what kind of image it is."""
    r = settings.size * settings.supersample
    plate = rng.random() < settings.plate_probability
    frame = plate and rng.random() < settings.frame_probability
    digits = "0123456789"
    if label != schema.NO_DIGIT:
        chars, pos = pick_chars(rng, settings, digits[label], digits)
        ink, plate_mask = _string_scene(rng, settings, r, chars, pos, "digit", plate, frame)
        return ink, plate_mask, plate, "digit"
    kind = NEGATIVE_KINDS[pick(rng, settings.negative_weights)]
    if kind == "letters":
        centre = NEGATIVE_CHARS[int(rng.integers(len(NEGATIVE_CHARS)))]
        pool = digits if rng.random() < 0.6 else NEGATIVE_CHARS
        chars, pos = pick_chars(rng, settings, centre, pool)
        ink, plate_mask = _string_scene(rng, settings, r, chars, pos, "digit", plate, frame)
    elif kind == "partial":
        chars, _ = pick_chars(rng, settings, digits[int(rng.integers(10))], digits)
        direction = PARTIAL_DIRECTIONS[pick(rng, PARTIAL_DIRECTION_WEIGHTS)]
        pos = {"left": 0, "right": len(chars) - 1}.get(direction, int(rng.integers(len(chars))))
        ink, plate_mask = _string_scene(rng, settings, r, chars, pos, direction, plate, frame)
    elif kind == "zoom":
        chars, pos = pick_chars(rng, settings, digits[int(rng.integers(10))], digits)
        ink, plate_mask = _string_scene(rng, settings, r, chars, pos, "zoom", plate, frame)
    else:
        plate_mask = _plate_patch(rng, r) if plate else np.zeros((r, r), np.float32)
        ink = _shapes(rng, r) if kind == "shapes" else np.zeros((r, r), np.float32)
    return ink, plate_mask, plate, kind
