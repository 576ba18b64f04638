"""SVHN-like training images made from scratch (the project's default data source): the
entry points ``generate`` and ``generate_one``; the other modules of this package hold the parts.

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
import contextlib
import itertools
import multiprocessing
import os
from typing import Iterator, Tuple

import numpy as np

from svhn_tfx import schema
from svhn_tfx.schema import images
from svhn_tfx.components.generator.photo import render
from svhn_tfx.components.generator.settings import GeneratorSettings
from svhn_tfx.components.generator.surfaces import photo_paths
from svhn_tfx.components.source_digest import source_digest

# A generated eval split uses the train seed + EVAL_SEED_OFFSET: never the same images.
EVAL_SEED_OFFSET = 1000
MARKER = ".{split}.generator"   # beside a generated split: the fingerprint of what made it
GENERATE_CHUNK = 250     # images per task when rendering in several processes


def fingerprint(n: int, seed: int, settings: GeneratorSettings = GeneratorSettings()) -> str:
    """A digest of what ``generate(n, seed, settings)`` yields: the settings, the source of
    this package and the photographs its walls may show, so that data made by an older
    generator is not taken for today's."""
    return source_digest(os.path.dirname(os.path.abspath(__file__)), *photo_paths(),
                         extra=f"{n} {seed} {settings!r}")


def render_example(rng: np.random.Generator, settings: GeneratorSettings = GeneratorSettings(),
                   label: int = 0) -> np.ndarray:
    """One image (uint8, size x size x 3) of digit ``label`` (0-9) or of no digit (10)."""
    if not 0 <= label <= schema.MAX_LABEL:
        raise ValueError(f"label {label} is not 0-9 or {schema.NO_DIGIT} (no digit)")
    return render(rng, settings, label)[0]


def draw_label(rng: np.random.Generator, settings: GeneratorSettings) -> int:
    """The label of the next image: "no digit" with its share, else a uniform digit."""
    if rng.random() < settings.no_digit_fraction:
        return schema.NO_DIGIT
    return int(rng.integers(schema.NUM_DIGITS))


def _encode(rng: np.random.Generator, settings: GeneratorSettings, pixels: np.ndarray,
           as_jpeg: bool) -> bytes:
    if not as_jpeg:
        return images.encode(pixels)
    return images.encode(pixels, "JPEG", quality=int(rng.integers(
        settings.jpeg_quality[0], settings.jpeg_quality[1] + 1)))


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
             start: int = 0, workers: int = 1) -> Iterator[schema.Record]:
    """Yields ``n`` records, images ``start`` .. ``start + n - 1`` of this seed, in order.

    ``workers`` > 1 renders in that many processes (the same images: each depends only on
    its index)."""
    chunks = [(seed, s, min(GENERATE_CHUNK, start + n - s), settings)
              for s in range(start, start + n, GENERATE_CHUNK)]
    parallel = workers > 1 and len(chunks) > 1
    # spawn, not fork: the parent may have TensorFlow's threads running
    with multiprocessing.get_context("spawn").Pool(workers) if parallel \
            else contextlib.nullcontext() as pool:
        rendered = pool.imap(_generate_chunk, chunks) if parallel else map(_generate_chunk, chunks)
        for i, (image, label) in enumerate(itertools.chain.from_iterable(rendered), start):
            yield schema.Record(where=f"synthetic(seed={seed})#{i}", image=image, label=label)


def write_generated(data_root: str, split: str, n: int, seed: int,
                    settings: GeneratorSettings = GeneratorSettings(), *, workers: int = 1,
                    reuse: bool = True, remake_unmarked: bool = True, log=print):
    """Writes ``generate(n, seed, settings)`` as ``split`` of ``data_root``, unless (with
    ``reuse``) the split there was made by this very generator, count and seed (the fingerprint
    file beside it says so): data of an older generator is never taken for today's. A split
    without that file was not made here (or before there were fingerprints): remade if
    ``remake_unmarked``, else kept and said so, so that nobody's own data is lost. Returns the
    write's ``SplitStats``, or None when the split there was kept."""
    from svhn_tfx.components.converters.records import gfile, write_split
    wanted = fingerprint(n, seed, settings)
    marker = os.path.join(data_root, MARKER.format(split=split))
    made = None
    if gfile.exists(marker):
        with gfile.GFile(marker) as f:
            made = f.read().strip()
    if reuse and gfile.exists(os.path.join(data_root, split)):
        if made == wanted:
            log(f"reusing {split} ({n} images, seed {seed}, same generator)")
            return None
        if made is None and not remake_unmarked:
            log(f"keeping {split}: it has no generator fingerprint ({marker}), so it was not "
                f"generated here; remove it to generate it anew")
            return None
        log(f"{split} was made by another generator, count or seed; generating it again")
    stats = write_split(generate(n, seed, settings, workers=workers), data_root, split,
                        overwrite=True)
    with gfile.GFile(marker, "w") as f:
        f.write(wanted + "\n")
    return stats
