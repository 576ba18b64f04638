"""Pre-renders every glyph mask the default GeneratorSettings can ask `_glyph` for.

Run with the project venv (its installed svhn_tfx; fonts come from its fontpkg_* packages
and matplotlib):
    .venv/bin/python -m bench.gpu_probe_glyphs .gpu/glyphs.npz
Writes one npz: a flat uint8 buffer of all masks, and per glyph its offset, shape and top,
plus the JSON of default_fonts() (the device has no fontpkg packages).
"""
import json
import sys
import time

import numpy as np

from svhn_tfx.components.generator import fonts as typefaces
from svhn_tfx.components.generator import text


def keys():
    faces = typefaces.default_fonts()
    chars = sorted(set("0123456789") | set(text.NEGATIVE_CHARS))
    for face, _ in faces:
        bold = typefaces.is_bold(face)
        # what _string_scene can pass: WEIGHTS clipped as it clips them
        weights = sorted({(0 if (w < 0 and not bold) else (1 if (w > 1 and bold) else w))
                          for w in text.WEIGHTS})
        for w in weights:
            for c in chars:
                yield face, c, w
    return


def main(out):
    start = time.time()
    faces = typefaces.default_fonts()
    names, offsets, shapes, tops, chunks = [], [], [], [], []
    offset = 0
    for face, c, w in keys():
        mask, top = text.glyph(face, c, w)
        mask = np.ascontiguousarray(mask, np.uint8)
        names.append(f"{face}\t{c}\t{w}")
        offsets.append(offset)
        shapes.append(mask.shape)
        tops.append(top)
        chunks.append(mask.ravel())
        offset += mask.size
    np.savez_compressed(out, names=np.array(names), offsets=np.array(offsets, np.int64),
                        shapes=np.array(shapes, np.int32), tops=np.array(tops, np.int32),
                        buffer=np.concatenate(chunks),
                        default_fonts=np.array(json.dumps([[f, w] for f, w in faces])),
                        glyph_px=np.array(text.GLYPH_PX))
    print(f"{len(names)} glyphs of {len(faces)} faces, {offset / 1e6:.1f} MB raw, "
          f"{time.time() - start:.0f} s -> {out}")


if __name__ == "__main__":
    main(sys.argv[1])
