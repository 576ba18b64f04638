"""What shapes the generated images: ``GeneratorSettings``, one frozen record of every
choice, and ``pick``, the weighted draw most choices go through."""
import bisect
import dataclasses
import functools
import itertools
from typing import Tuple

import numpy as np

from svhn_tfx.components.generator import fonts as typefaces

NEGATIVE_KINDS = ("background", "shapes", "letters", "partial", "zoom")


@dataclasses.dataclass(frozen=True)
class GeneratorSettings:
    """Everything that shapes the generated images. Sizes given as fractions are of the
    crop side unless noted; probabilities are per image."""
    size: int = 32                        # output square side in pixels
    supersample: int = 2                  # render at size*supersample, then downscale
    no_digit_fraction: float = 0.06       # share of label-10 ("no digit") images; 10% made
    # more real digits "no digit" without telling real backgrounds apart better (bench/ablation.py)
    jpeg_fraction: float = 0.2            # share stored as JPEG (the rest as PNG)
    jpeg_quality: Tuple[int, int] = (35, 95)
    neighbours: bool = True               # house numbers of several digits, cut at the crop edges
    # (independent of it, "partial" no-digit images show a digit cut at the border)
    number_length_weights: Tuple[float, ...] = (0.2, 0.38, 0.32, 0.1)  # 1, 2, 3, 4 digits
    distortions: bool = True              # rotation, shear, perspective, blur, low res, noise
    fonts: Tuple[Tuple[str, float], ...] = dataclasses.field(
        default_factory=typefaces.default_fonts)   # (face, pick weight), see fonts.py
    digit_height: Tuple[float, float] = (0.6, 1.0)   # labelled digit's larger box side / crop side
    # (SVHN widens the annotated box to a square of its larger side, centred, no margin: the
    # shared format-1 photos' boxes give their format-2 crops exactly. Larger boxes read real
    # crops better from scratch, not after make pretrain: 0.8-1.0 (wide digits) and 0.7-1.0
    # (0.850 alone, 0.848 for the demo recipe, more real digits called "no digit" and its 1%
    # risk promise broken: bench/results/quality_box_0.7.json); bench/ablation.py). Nor do
    # 0.8-1.0 with padding 0-0.06, which match real crops' row profile (bench/domain_gap.py):
    # 0.852 alone, 0.856 demo, risk 0.036 (bench/results/quality_box_fit.json)
    centre_jitter: float = 0.06           # std of the crop centre offset
    box_padding: Tuple[float, float] = (0.0, 0.12)   # looseness of the annotated box, of height
    digit_gap: Tuple[float, float] = (-0.05, 0.25)    # space between digits (of digit height)
    aspect_stretch: Tuple[float, float] = (0.5, 0.95)  # condensed .. plain lettering: SVHN's
    # digits are tall and narrow (the shared format-1 boxes of non-1 digits: median 0.54 as wide
    # as high; this gives 0.59). 0.75-1.3 gave 0.75, and from scratch read real crops 0.79
    # against 0.84 (bench/ablation.py, ASPECT_ROWS)
    max_rotation_deg: float = 12.0
    max_shear: float = 0.2
    max_perspective: float = 0.12         # projective term, per digit height
    glyph_warp: float = 0.0               # smooth random bending of each glyph, of its height
    # (0: each font's exact outline). Up to 0.06 read real crops 0.831 from scratch (mean of
    # four seeds) against 0.846, generated ones 0.818 against 0.856 (bench/ablation.py SHAPE_ROWS)
    plate_probability: float = 0.5        # digits on a plate (else painted/mounted on the wall)
    frame_probability: float = 0.3        # a plate has a border line in the digit colour
    shadow_probability: float = 0.25      # drop shadow of raised digits
    outline_probability: float = 0.1      # digits outlined in a third colour (30% read real
    # crops 0.834 / 0.843 from scratch against 0.841 / 0.865, bench/ablation.py LETTERING_ROWS)
    emboss_probability: float = 0.0       # raised lettering lit from one side (bright and dark
    # rims inside the strokes): 30% read 0.852 / 0.847 against 0.841 / 0.865, so it is off
    low_contrast_fraction: float = 0.3    # digit/background luminance difference in LOW_CONTRAST
    # (0.6 read real crops 0.828 from scratch, mean of four seeds, against 0.846, though real
    # crops are flatter than generated ones: bench/ablation.py CONTRAST_ROWS)
    hard_shadow_probability: float = 0.2  # a cast shadow edge across the crop
    clutter_probability: float = 0.7      # photo-like clutter (windows, wires, edges) behind
    # the digits: at full length (make pretrain) 0.7 read real crops 0.865 against 0.861 at
    # 0.35, the demo recipe 0.871 against 0.861, inside the dev set's +-1.5 points, with every
    # trust target still met (docs/real-data-quality.md, "More clutter at full length")
    photo_wall_probability: float = 0.0   # walls shaded by a patch of a real photograph
    # (surfaces.PHOTO_DIR) instead of a drawn texture. From scratch 0.6 read real crops 0.873
    # (mean of the three seeds of four that trained; one stayed at chance), 0.3 read 0.860,
    # against 0.871 (bench/ablation.py PHOTO_WALL_ROWS): off
    busier_negative_walls: bool = True    # bare-wall and cut-digit negatives: busier walls, more
    # clutter (False gives them the digit crops' walls: no better on real crops, bench/ablation.py)
    # camera: real crops are soft and nearly noise-free at 32 px (most are upsampled from a
    # small box); bench/domain_gap.py compares their spectra with these images
    blur_sigma: float = 2.5               # gaussian blur sigma: |N(0, blur_sigma / 2)|, output
    # pixels (above blur_sigma for 4.5% of the images). 3.5 read real crops 0.863 from scratch,
    # mean of four seeds, against 0.871 (bench/ablation.py MORE_BLUR_ROWS)
    blur_cap: float = 0.0                 # largest blur sigma (0: none). pretrained/ reads the
    # generated digits blurred by sigma 2-2.5 0.78, those beyond 2.5 0.59, the rest 0.91-0.94
    # (2.0 read real crops 0.840 from scratch, mean of four seeds, against 0.846: bench/ablation.py
    # BLUR_CAP_ROWS)
    low_res_probability: float = 0.7      # image comes from a smaller source region, upsampled
    min_source_fraction: float = 0.5      # smallest source resolution, of ``size`` (0.4, as
    # small as the smallest format-1 boxes, read real crops 0.849 from scratch, mean of four
    # seeds, against 0.846: bench/ablation.py SOURCE_ROWS)
    blur_fade: float = 0.0                # saturation lost at a blur of blur_sigma / 2 and
    # beyond (half as much contrast), less for less blur: soft real crops are greyer and flatter.
    # 0.5 read real crops 0.848 from scratch (mean of four seeds) against 0.846: off
    # (bench/ablation.py FADE_ROWS)
    noise_sigma: float = 4.0              # max sensor noise, of 255
    source_jpeg_probability: float = 0.5  # the photo was a JPEG before the crop was cut and
    # resized, as SVHN's were: its blocks and colour bleeding at the source's scale. From
    # scratch within the seed spread (bench/ablation.py CAMERA_ROWS); at full length (make
    # pretrain) 0.861 of real crops against 0.850 off, the demo recipe 0.861 against 0.841,
    # fewer real digits called "no digit" (docs/real-data-quality.md, "The source JPEG at full
    # length")
    camera_at_source: bool = False        # defocus and sensor noise at the photo's own scale,
    # before its JPEG and the resize to the crop (a street photo's order), not after the resize.
    # From scratch 0.841 of real crops (mean of four seeds) against 0.846 (bench/ablation.py
    # CAMERA_ORDER_ROWS); at 20,000 steps of make pretrain 0.863 alone, 0.880 by the demo
    # recipe, at 30,000 0.872 / 0.869, against 0.865 / 0.871 for pretrained/: inside the
    # noise (docs/real-data-quality.md, "The camera's order")
    # NEGATIVE_KINDS; letters are few: each one teaches that a digit-sized glyph can be no
    # digit, and real digits in unusual lettering were then called "no digit" (bench/ablation.py)
    negative_weights: Tuple[float, ...] = (0.24, 0.22, 0.04, 0.40, 0.06)

    def __post_init__(self):
        if self.size < 8 or self.supersample < 1:
            raise ValueError(f"size must be >= 8 and supersample >= 1, got {self.size}, "
                             f"{self.supersample}")
        for name in ("no_digit_fraction", "jpeg_fraction", "plate_probability",
                     "frame_probability", "shadow_probability", "outline_probability",
                     "emboss_probability",
                     "low_contrast_fraction", "hard_shadow_probability",
                     "clutter_probability", "photo_wall_probability", "low_res_probability",
                     "min_source_fraction",
                     "source_jpeg_probability", "blur_fade"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        if self.blur_cap < 0:
            raise ValueError(f"blur_cap must be >= 0 (0: none), got {self.blur_cap}")
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


def pick(rng: np.random.Generator, weights) -> int:
    """Index drawn with the given (unnormalised) weights; cheaper than rng.choice(p=...)."""
    cum = _cumulative(tuple(weights))
    return min(bisect.bisect_right(cum, rng.random() * cum[-1]), len(cum) - 1)


@functools.lru_cache(maxsize=None)
def _cumulative(weights: Tuple[float, ...]) -> Tuple[float, ...]:
    return tuple(itertools.accumulate(float(w) for w in weights))
