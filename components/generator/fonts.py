"""Typefaces the generator draws house numbers with.

Real house numbers come in hundreds of typefaces: condensed grotesques on enamel plates,
slab serifs on wood, rounded and stencil display faces, hand-painted strokes. A model that
has seen three font families reads those three. The generator draws from two sources, both
installed from PyPI by the pinned dependencies, so nothing is downloaded at run time:

* matplotlib's own fonts (DejaVu, STIX, Computer Modern), named by file, e.g.
  ``"DejaVuSans-Bold.ttf"``;
* Google Fonts families packaged by ``fontpkg`` (``fontpkg-<slug>`` on PyPI), named
  ``"<slug>@<weight>"``, e.g. ``"oswald@700"``. Variable fonts are set to that weight on
  their ``wght`` axis; static families use the file nearest that weight.

A face is named by a string so that ``GeneratorSettings`` stays a plain, hashable record.
"""
import functools
import os
from typing import Tuple

import matplotlib
from PIL import ImageFont

MATPLOTLIB_FONT_DIR = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
BOLD_WEIGHT = 600   # a face at or above this weight counts as bold

# Fonts with plain lining digits (cmmi10 has old-style figures; cmex10/cmsy10/STIXSiz*/
# STIXNonUni* map digits to symbols or have none).
MATPLOTLIB_FONTS: Tuple[str, ...] = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf", "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "STIXGeneral.ttf", "STIXGeneralBol.ttf",
    "cmr10.ttf", "cmb10.ttf", "cmss10.ttf", "cmtt10.ttf",
)

# fontpkg families with lining figures and a plain zero (no old-style figures, no slashed or
# dotted coding zeros), grouped by the kind of house number they stand for. Each must be
# installed (setup.py pins them); a missing one is an error, not a silent change of data.
FONTPKG_FAMILIES: Tuple[str, ...] = (
    # grotesque and humanist sans: enamel plates, printed and stuck-on numbers
    "abeezee", "archivo", "arimo", "asap", "atkinson-hyperlegible", "barlow", "cabin",
    "catamaran", "chivo", "dm-sans", "encode-sans", "epilogue", "figtree", "fira-sans",
    "geist", "heebo", "hind", "ibm-plex-sans", "inter", "jost", "kanit", "karla", "lato",
    "league-spartan", "lexend", "libre-franklin", "manrope", "montserrat", "mukta", "mulish",
    "noto-sans", "nunito", "open-sans", "outfit", "overpass", "oxygen", "poppins", "prompt",
    "pt-sans", "public-sans", "questrial", "red-hat-display", "roboto", "rubik", "sarabun",
    "signika", "sora", "source-sans-3", "space-grotesk", "titillium-web", "urbanist",
    "work-sans", "merriweather-sans",
    # condensed and narrow: the tall digits of street and door numbers
    "abel", "alumni-sans", "anton", "archivo-narrow", "barlow-condensed",
    "barlow-semi-condensed", "bebas-neue", "fira-sans-condensed", "fjalla-one",
    "ibm-plex-sans-condensed", "oswald", "pt-sans-narrow", "rajdhani", "roboto-condensed",
    "saira-condensed", "teko", "yanone-kaffeesatz", "dosis",
    # heavy display: cast and cut-out numbers
    "archivo-black", "black-ops-one", "changa-one", "hammersmith-one", "lilita-one",
    "russo-one", "titan-one", "viga", "luckiest-guy", "fredoka", "righteous", "bungee",
    "gravitas-one", "unbounded", "rowdies",
    # rounded and technical
    "varela-round", "comfortaa", "quicksand", "orbitron", "share-tech", "chakra-petch",
    "exo", "exo-2", "play", "saira",
    # slab and serif: painted wood, brass and cast iron
    "arvo", "bitter", "roboto-slab", "sanchez", "alfa-slab-one", "slabo-27px", "domine",
    "noto-serif", "pt-serif", "ibm-plex-serif", "source-serif-4", "merriweather", "lora",
    "libre-baskerville", "crimson-pro", "cardo", "abril-fatface", "dm-serif-display",
    "bodoni-moda", "fraunces", "cinzel",
    # hand-painted and marker
    "kalam", "permanent-marker", "caveat", "acme",
)
FACE_WEIGHTS = (400, 700, 900)   # the weights each fontpkg family is drawn at, where it has them
# Light faces (300) too read the real dev crops 0.4 points better under the demo's fine-tuning
# (table 1zu), but make pretrain with them read 0.906 alone and 0.909 under the demo recipe
# (0.902 / 0.906 with the amplitude mix) against 0.909 / 0.909: not adopted
# (docs/real-data-quality.md, "Light faces")
# How often a font is picked: each fontpkg family (all its weights together) as often as
# one matplotlib file, so the 120 new families dominate without drowning the originals.
FAMILY_PICK_WEIGHT = 1.0


def is_bold(face: str) -> bool:
    if "@" in face:
        return int(face.rsplit("@", 1)[1]) >= BOLD_WEIGHT
    return "Bol" in face or face == "cmb10.ttf"


@functools.lru_cache(maxsize=None)
def _family(slug: str):
    import fontpkg   # only faces of this kind need it
    try:
        return fontpkg.family(slug)
    except fontpkg.FamilyNotInstalled:
        raise FileNotFoundError(
            f"font family {slug!r} is not installed: pip install fontpkg-{slug} (setup.py "
            f"pins it)") from None


def _weights(slug: str, weights: Tuple[int, ...] = FACE_WEIGHTS) -> Tuple[int, ...]:
    """The ``weights`` this family can be drawn at, distinct after clipping to its range."""
    fam = _family(slug)
    upright = [f for f in fam.files if f.style == "normal"]
    if not upright:
        raise FileNotFoundError(f"font family {slug!r} has no upright face")
    if upright[0].variable and upright[0].wght_min is not None:
        lo, hi = upright[0].wght_min, upright[0].wght_max
        return tuple(sorted({int(min(max(w, lo), hi)) for w in weights}))
    have = sorted(f.weight for f in upright if f.weight is not None)
    return tuple(sorted({min(have, key=lambda h: abs(h - w)) for w in weights})) \
        if have else (400,)


def default_fonts(weights: Tuple[int, ...] = FACE_WEIGHTS) -> Tuple[Tuple[str, float], ...]:
    """(face, pick weight) for every default face, each fontpkg family at ``weights``."""
    fonts = [(name, FAMILY_PICK_WEIGHT) for name in MATPLOTLIB_FONTS]
    for slug in FONTPKG_FAMILIES:
        have = _weights(slug, weights)
        fonts += [(f"{slug}@{w}", FAMILY_PICK_WEIGHT / len(have)) for w in have]
    return tuple(fonts)


@functools.lru_cache(maxsize=None)
def load(face: str, size: int) -> ImageFont.FreeTypeFont:
    """The face at ``size`` pixels."""
    if "@" not in face:
        path = os.path.join(MATPLOTLIB_FONT_DIR, face)
        if not os.path.exists(path):
            raise FileNotFoundError(f"font {face} is not in matplotlib's font folder "
                                    f"{MATPLOTLIB_FONT_DIR}")
        return ImageFont.truetype(path, size)
    slug, weight = face.rsplit("@", 1)
    weight = int(weight)
    upright = [f for f in _family(slug).files if f.style == "normal"]
    if upright[0].variable:
        font = ImageFont.truetype(str(upright[0].path), size)
        axes = font.get_variation_axes()
        font.set_variation_by_axes([
            weight if bytes(a.get("name", b"")).lower().startswith(b"weight") else a["default"]
            for a in axes])
        return font
    chosen = min(upright, key=lambda f: abs((f.weight or 400) - weight))
    return ImageFont.truetype(str(chosen.path), size)
