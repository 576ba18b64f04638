"""What a street photo does to the scene: surfaces, shadows and outlines composited with the
ink, light and tone, then the camera (blur, low source resolution, noise), kept legible."""
import io

import numpy as np
from PIL import Image, ImageFilter

from svhn_tfx.components.generator.scene import content
from svhn_tfx.components.generator.settings import GeneratorSettings
from svhn_tfx.components.generator.surfaces import (BUSY_TEXTURE_WEIGHTS, LUMA_WEIGHTS,
                                                    TEXTURE_WEIGHTS, draw_clutter, palette,
                                                    ramp, texture)

MOTION_BLUR_PROBABILITY = 0.06
BACKGROUND_CLUTTER_PROBABILITY = 0.75   # clutter in "no digit" crops of bare background
TONE_CONTRAST = (0.8, 1.2)    # global contrast change of the whole photo
TONE_GAMMA = (0.8, 1.25)
MAX_LEGIBILITY_GAIN = 3.0
MIN_INK_CONTRAST = 0.1   # final luminance difference ink vs surroundings, at least
SOURCE_JPEG_QUALITY = (40, 90)
EMBOSS_STRENGTH = (0.25, 0.6)   # how far an embossed stroke's rims go towards white and black
LUMA = np.array(LUMA_WEIGHTS, np.float32)


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
    luma = pixels @ LUMA
    a, b = float(luma[inside].mean()), float(luma[around].mean())
    diff = abs(a - b) / 255.0
    if diff >= MIN_INK_CONTRAST:
        return pixels
    # stretch about the darker side in dark images, the brighter one in bright images,
    # so the stretch does not vanish into clipping
    pivot = min(a, b) if (a + b) / 2 < 128 else max(a, b)
    gain = min(MIN_INK_CONTRAST / max(diff, 1e-3), MAX_LEGIBILITY_GAIN)
    return np.clip((pixels - pivot) * gain + pivot + 0.5, 0, 255).astype(np.uint8)


def _noisy(rng: np.random.Generator, pixels: np.ndarray, sigma: float) -> np.ndarray:
    """Sensor noise of ``sigma`` (of 255): mostly in luminance, a little per colour."""
    h, w = pixels.shape[:2]
    out = pixels.astype(np.float32)
    out += sigma * rng.standard_normal((h, w, 1), dtype=np.float32)
    out += 0.4 * sigma * rng.standard_normal((h, w, 3), dtype=np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _faded(pixels: np.ndarray, amount: float) -> np.ndarray:
    """Colour and contrast lost with the detail: ``amount`` of the saturation and half of it
    of the contrast (about the mean luminance)."""
    out = pixels.astype(np.float32)
    grey = out @ LUMA
    out = grey[..., None] + (out - grey[..., None]) * (1.0 - amount)
    mean = float(grey.mean())
    out = mean + (out - mean) * (1.0 - 0.5 * amount)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _source_jpeg(rng: np.random.Generator, settings: GeneratorSettings, pil: Image.Image):
    """The photo as its camera stored it, on some of them: JPEG blocks at the source's scale."""
    if settings.source_jpeg_probability and rng.random() < settings.source_jpeg_probability:
        stored = io.BytesIO()
        pil.save(stored, "JPEG", quality=int(rng.integers(*SOURCE_JPEG_QUALITY)))
        pil = Image.open(io.BytesIO(stored.getvalue())).convert("RGB")
    return pil


def render(rng: np.random.Generator, settings: GeneratorSettings, label: int):
    """(uint8 size x size x 3 pixels, ink mask at render resolution, kind of image)."""
    r = settings.size * settings.supersample
    ss = settings.supersample
    ink, plate_mask, plate, kind = content(rng, settings, label)
    colours = palette(rng, settings, plate)

    # surfaces (channels first): wall everywhere, plate where the plate mask is
    busier = settings.busier_negative_walls
    img = texture(rng, r, colours["wall"], BUSY_TEXTURE_WEIGHTS
                   if busier and kind in ("background", "partial") else TEXTURE_WEIGHTS,
                   settings.photo_wall_probability)
    # a crop of bare background is mostly a crop of something busy in a street photo
    clutter = BACKGROUND_CLUTTER_PROBABILITY if busier and kind == "background" else \
        settings.clutter_probability
    if rng.random() < clutter:
        img = draw_clutter(rng, img, colours["wall"])
    if plate:
        img += (texture(rng, r, colours["surface"]) - img) * plate_mask[None]

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
    fg = colours["fg"][:, None, None] * (1.0 + rng.uniform(-0.2, 0.2) * ramp(rng, r))[None]
    img += (fg - img) * ink[None]
    if settings.emboss_probability and rng.random() < settings.emboss_probability:
        # raised or cast lettering lit from one side: a bright rim on the strokes' edges that
        # face the light, a dark rim on those that face away (a bevel, inside the strokes)
        step = int(rng.integers(1, ss + 1))
        dx, dy = (int(v) for v in rng.integers(-1, 2, size=2) * step)
        if dx or dy:
            lit = ink * (1.0 - _shift(ink, dx, dy))
            unlit = ink * (1.0 - _shift(ink, -dx, -dy))
            amount = rng.uniform(*EMBOSS_STRENGTH)
            img += amount * lit[None] * (1.0 - img)
            img *= (1.0 - amount * unlit)[None]

    # light: gradient, a hard cast shadow, glare; then exposure, contrast, white balance
    # and gamma as one lookup table per channel on the quantised image
    light = 1.0 + rng.uniform(-0.35, 0.35) * ramp(rng, r)
    if rng.random() < settings.hard_shadow_probability:
        edge = ramp(rng, r) - rng.uniform(-0.5, 0.5)
        light *= 1.0 - rng.uniform(0.3, 0.7) * 0.5 * (1.0 + np.tanh(edge / rng.uniform(0.01, 0.15)))
    if rng.random() < 0.08:
        glare = np.exp(-((ramp(rng, r) - rng.uniform(-0.5, 0.5)) / 0.3) ** 2)
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
        if settings.blur_cap:
            sigma = min(sigma, settings.blur_cap)
        if rng.random() < MOTION_BLUR_PROBABILITY:
            kernel = np.zeros((5, 5))
            if rng.random() < 0.5:
                kernel[2, :] = 1
            else:
                kernel[:, 2] = 1
            pil = pil.filter(ImageFilter.Kernel((5, 5), kernel.ravel().tolist(), scale=5))
            sigma = 0.0
        source = r
        if rng.random() < settings.low_res_probability:
            lowest = settings.min_source_fraction + (1 - settings.min_source_fraction) * min(
                sigma / settings.blur_sigma, 1.0) * 0.6
            source = int(round(size * rng.uniform(lowest, 1.0)))
            pil = pil.resize((source, source), Image.BILINEAR)
        if settings.camera_at_source:
            # as a street photo is made: the lens and the sensor at the photo's own scale,
            # then its JPEG, then the crop resized to 32 px last (SVHN's own step), which
            # leaves the resize's own texture on top, never smoothed away
            if sigma > 0.15:
                pil = pil.filter(ImageFilter.GaussianBlur(sigma * source / size))
            noise = settings.noise_sigma * rng.random() ** 2  # mostly mild
            if noise > 0.5:
                pil = Image.fromarray(_noisy(rng, np.asarray(pil), noise))
        pil = _source_jpeg(rng, settings, pil)
        pil = pil.resize((size, size), Image.BICUBIC if rng.random() < 0.7 else Image.BILINEAR)
        if not settings.camera_at_source and sigma > 0.15:
            pil = pil.filter(ImageFilter.GaussianBlur(sigma))  # at output scale, 4x cheaper
        pixels = np.asarray(pil)
        if settings.blur_fade and sigma > 0.15:
            # real soft crops are greyer and flatter than sharp ones (bench/fine_detail.py)
            fade = settings.blur_fade * min(2.0 * sigma / settings.blur_sigma, 1.0)
            pixels = _faded(pixels, fade)
        pixels = _legible(pixels, ink, size)
        if not settings.camera_at_source:   # drawn here: the default's draws keep their order
            noise = settings.noise_sigma * rng.random() ** 2
            if noise > 0.5:
                pixels = _noisy(rng, pixels, noise)
    else:
        pixels = _legible(np.asarray(pil.resize((size, size), Image.BICUBIC)), ink, size)
    return pixels, ink, kind
