"""Tests of the SVHN-like image generator (components/generator/)."""
import collections
import dataclasses
import io

import numpy as np
import pytest
from PIL import Image, ImageFilter

from svhn_tfx import schema
from svhn_tfx.components.generator import geometry, photo, surfaces, synthetic, text
from svhn_tfx.components.generator.settings import NEGATIVE_KINDS, GeneratorSettings
from svhn_tfx.components.generator.synthetic import generate_one

DEFAULT = GeneratorSettings()


def _decode(image_bytes):
    with Image.open(io.BytesIO(image_bytes)) as img:
        img.load()
        return img.format, img.mode, img.size, np.asarray(img.convert("RGB"))


def _render(seed, index, settings, label=None):
    """(pixels, ink mask, kind) of one image, as generate_one draws it."""
    rng = np.random.default_rng([seed, index])
    drawn = synthetic.draw_label(rng, settings)
    rng.random()  # the PNG/JPEG choice
    return photo.render(rng, settings, drawn if label is None else label)


@pytest.fixture(scope="module")
def batch():
    """400 default images of seed 0: (bytes, label) pairs."""
    return [generate_one(0, i) for i in range(400)]


def test_generate_yields_records_that_are_reproducible_per_index():
    first = list(synthetic.generate(12, seed=3))
    again = list(synthetic.generate(12, seed=3))
    assert [r.image for r in first] == [r.image for r in again]
    assert [r.label for r in first] == [r.label for r in again]
    assert first[5].where == "synthetic(seed=3)#5"
    # a shard made on its own holds exactly the same images as the whole run
    shard = list(synthetic.generate(4, seed=3, start=8))
    assert [r.image for r in shard] == [r.image for r in first[8:12]]
    assert [r.where for r in shard] == [f"synthetic(seed=3)#{i}" for i in range(8, 12)]


def test_generated_records_pass_the_writers_check():
    from svhn_tfx.components.converters.records import check_record
    for record in synthetic.generate(30, seed=4):
        check_record(record)


def test_different_seeds_and_indices_give_different_images():
    a = [generate_one(1, i)[0] for i in range(20)]
    b = [generate_one(2, i)[0] for i in range(20)]
    assert all(x != y for x, y in zip(a, b))
    assert len(set(a)) == len(a)


def test_labels_cover_all_classes_in_proportion(batch):
    counts = collections.Counter(label for _, label in batch)
    assert set(counts) == set(range(schema.NUM_CLASSES))
    no_digit = counts[schema.NO_DIGIT] / len(batch)
    assert abs(no_digit - DEFAULT.no_digit_fraction) < 0.5 * DEFAULT.no_digit_fraction, no_digit
    digit_counts = [counts[d] for d in range(10)]
    mean = np.mean(digit_counts)
    assert min(digit_counts) > 0.5 * mean and max(digit_counts) < 1.6 * mean, digit_counts


def test_images_decode_as_rgb_of_the_configured_size_in_png_and_jpeg(batch):
    formats = collections.Counter()
    for image, _ in batch[:150]:
        fmt, mode, size, pixels = _decode(image)
        formats[fmt] += 1
        assert mode == "RGB" and size == (32, 32)
        assert pixels.std() > 1.0  # not a blank or broken image
    assert set(formats) == {"PNG", "JPEG"}
    assert 0.08 < formats["JPEG"] / 150 < 0.35, formats  # default jpeg_fraction is 0.2
    big = GeneratorSettings(size=48)
    for i in range(5):
        assert _decode(generate_one(0, i, big)[0])[2] == (48, 48)


def test_jpeg_fraction_switch():
    png_only = GeneratorSettings(jpeg_fraction=0.0)
    jpeg_only = GeneratorSettings(jpeg_fraction=1.0)
    assert {_decode(generate_one(5, i, png_only)[0])[0] for i in range(15)} == {"PNG"}
    assert {_decode(generate_one(5, i, jpeg_only)[0])[0] for i in range(15)} == {"JPEG"}


def test_render_example_makes_the_asked_for_class():
    rng = np.random.default_rng(0)
    for label in (0, 7, schema.NO_DIGIT):
        pixels = synthetic.render_example(rng, DEFAULT, label)
        assert pixels.dtype == np.uint8 and pixels.shape == (32, 32, 3)
    with pytest.raises(ValueError):
        synthetic.render_example(rng, DEFAULT, 11)


def test_digit_is_centred_and_neighbours_switch_controls_cut_digits_at_the_edges():
    def stats(settings):
        at_edge, centred = 0, 0
        for i in range(120):
            _, ink, kind = _render(9, i, settings, label=i % 10)
            assert kind == "digit"
            at_edge += max(ink[:, :3].max(), ink[:, -3:].max()) > 0.5
            centred += ink[24:40, 24:40].max() > 0.5
        return at_edge / 120, centred / 120

    with_edges, centred = stats(DEFAULT)
    without_edges, centred_alone = stats(dataclasses.replace(DEFAULT, neighbours=False))
    assert centred > 0.97 and centred_alone > 0.97
    assert with_edges > 0.5, with_edges          # neighbouring digits cut at the crop edges
    assert without_edges < 0.3, without_edges    # only the digit itself (wide ones touch)
    assert with_edges > without_edges + 0.3
    # the switch changes the images themselves
    alone = dataclasses.replace(DEFAULT, neighbours=False)
    changed = sum(generate_one(2, i)[0] != generate_one(2, i, alone)[0] for i in range(10))
    assert changed >= 8


def test_distortions_switch_turns_geometry_and_camera_effects_off():
    plain = dataclasses.replace(DEFAULT, distortions=False)
    tilted = 0
    for i in range(30):
        h = geometry.homography(np.random.default_rng(i), plain, (50.0, 40.0), 47)
        assert h[0][1] == 0 and h[1][0] == 0 and h[2][0] == 0 and h[2][1] == 0
        h = geometry.homography(np.random.default_rng(i), DEFAULT, (50.0, 40.0), 47)
        tilted += abs(h[1][0]) > 1e-3 or abs(h[2][0]) > 1e-6
    assert tilted >= 25
    changed = sum(generate_one(2, i)[0] != generate_one(2, i, plain)[0] for i in range(10))
    assert changed >= 8


def test_no_digit_images_have_no_digit_in_the_centre():
    for kind, max_centre_ink in (("background", 0.0), ("partial", 0.15)):
        weights = tuple(1.0 if k == kind else 0.0 for k in NEGATIVE_KINDS)
        settings = dataclasses.replace(DEFAULT, negative_weights=weights)
        inked = 0
        for i in range(60):
            _, ink, got = _render(3, i, settings, label=schema.NO_DIGIT)
            assert got == kind
            inked += ink[22:42, 22:42].max() > 0.5
        assert inked / 60 <= max_centre_ink, (kind, inked)
    # and the partial ones do show a cut digit at the border
    weights = tuple(1.0 if k == "partial" else 0.0 for k in NEGATIVE_KINDS)
    settings = dataclasses.replace(DEFAULT, negative_weights=weights)
    assert sum(_render(3, i, settings, schema.NO_DIGIT)[1].max() > 0.5 for i in range(30)) > 25


def test_no_digit_images_are_not_told_apart_by_global_statistics():
    """A quadratic classifier on brightness/colour/contrast/edge statistics of the whole
    image must not separate "no digit" from digits well: negatives share the palette,
    lighting and camera pipeline, so the content of the crop has to decide."""
    settings = dataclasses.replace(DEFAULT, no_digit_fraction=0.5, jpeg_fraction=0.0)
    feats, labels = [], []
    for i in range(600):
        image, label = generate_one(21, i, settings)
        p = _decode(image)[3].astype(np.float32) / 255.0
        luma = p @ np.array([0.299, 0.587, 0.114], np.float32)
        feats.append(np.r_[p.mean((0, 1)), p.std((0, 1)), np.percentile(luma, [5, 50, 95]),
                           np.abs(np.diff(luma, axis=0)).mean(),
                           np.abs(np.diff(luma, axis=1)).mean()])
        labels.append(label == schema.NO_DIGIT)
    x, y = np.array(feats), np.array(labels)
    assert 0.35 < y.mean() < 0.65
    x = (x - x.mean(0)) / x.std(0)
    q = np.c_[x, x ** 2, np.ones(len(x))]
    half = len(x) // 2
    w = np.linalg.lstsq(q[:half], 2.0 * y[:half] - 1.0, rcond=None)[0]
    pred, truth = q[half:] @ w > 0, y[half:]
    balanced = 0.5 * ((pred & truth).sum() / truth.sum() + (~pred & ~truth).sum() / (~truth).sum())
    assert balanced < 0.72, balanced  # plain-wall negatives alone score ~0.77


def test_every_default_font_draws_ten_different_lining_digits():
    """Old-style figures (a "1" the height of an "o", a "9" below the baseline) are not
    house numbers: every default face's digits share one top and one baseline."""
    assert len(DEFAULT.fonts) > 200   # matplotlib's faces and the fontpkg families' weights
    for font, _ in DEFAULT.fonts:
        glyphs = [text.glyph(font, d, 0) for d in "0123456789"]
        shapes = {(m.shape, m.tobytes()) for m, _ in glyphs}
        assert len(shapes) == 10, font
        heights = np.array([m.shape[0] for m, _ in glyphs])
        tops = np.array([top for _, top in glyphs])
        assert heights.min() > 20, font
        assert np.ptp(tops) < 0.2 * np.median(heights), (font, tops)
        assert np.ptp(tops + heights) < 0.2 * np.median(heights), (font, tops + heights)


def test_a_bent_glyph_keeps_its_ink_and_baseline_but_not_its_outline():
    mask, top = text.glyph("DejaVuSans-Bold.ttf", "3", 0)
    bent, bent_top = text.warp_glyph(np.random.default_rng(0), mask, top, 0.06)
    assert bent.dtype == np.uint8 and bent.any(0).all() and bent.any(1).all()   # cropped to ink
    assert abs(bent.sum() / mask.sum() - 1) < 0.15
    assert abs(bent.shape[0] - mask.shape[0]) <= 0.12 * mask.shape[0] + 2
    assert abs((bent_top + bent.shape[0]) - (top + mask.shape[0])) <= 0.06 * mask.shape[0] + 2
    if bent.shape == mask.shape:
        assert np.abs(bent.astype(int) - mask).mean() > 5
    again, _ = text.warp_glyph(np.random.default_rng(0), mask, top, 0.06)
    np.testing.assert_array_equal(bent, again)


def test_extra_font_weights_share_each_family_pick_and_draw_thinner_strokes():
    from svhn_tfx.components.generator import fonts
    light = dict(fonts.default_fonts(fonts.FACE_WEIGHTS + (300,)))
    by_family = {}
    for face, pick in light.items():
        family = face.split("@")[0]
        by_family[family] = by_family.get(family, 0.0) + pick
    assert all(abs(total - fonts.FAMILY_PICK_WEIGHT) < 1e-9 for total in by_family.values())
    assert "roboto@300" in light and "roboto@300" not in dict(DEFAULT.fonts)
    ink = {w: text.glyph(f"roboto@{w}", "1", 0)[0].sum() for w in (300, 400)}
    assert ink[300] < ink[400]


def test_a_missing_font_family_is_a_clear_error():
    from svhn_tfx.components.generator import fonts
    with pytest.raises(FileNotFoundError, match="pip install fontpkg-no-such-family"):
        fonts.load("no-such-family@400", 64)


def test_rendering_in_several_processes_gives_the_same_images_in_order(monkeypatch):
    monkeypatch.setattr(synthetic, "GENERATE_CHUNK", 7)   # several chunks per worker
    serial = list(synthetic.generate(30, seed=4, start=5))
    parallel = list(synthetic.generate(30, seed=4, start=5, workers=2))
    assert [(r.where, r.image, r.label) for r in parallel] == \
        [(r.where, r.image, r.label) for r in serial]


def test_settings_are_validated():
    with pytest.raises(ValueError):
        GeneratorSettings(no_digit_fraction=1.5)
    with pytest.raises(ValueError):
        GeneratorSettings(digit_height=(0.9, 0.4))
    with pytest.raises(ValueError):
        GeneratorSettings(negative_weights=(1.0, 0.0))
    with pytest.raises(ValueError):
        GeneratorSettings(photo_wall_probability=1.5)


@pytest.fixture
def photo_dir(monkeypatch, tmp_path):
    """An empty folder standing in for surfaces.PHOTO_DIR, with the photographs' cache cleared
    before and after."""
    monkeypatch.setattr(surfaces, "PHOTO_DIR", str(tmp_path))
    surfaces.photographs.cache_clear()
    yield tmp_path
    surfaces.photographs.cache_clear()


def test_photo_walls_are_the_surface_colour_shaded_by_a_patch_of_a_photograph(photo_dir):
    stripes = np.tile(np.repeat(np.array([40, 200], np.uint8), 2), (64, 16))   # 2-pixel stripes
    Image.fromarray(stripes).save(photo_dir / "stripes.jpg", quality=100)
    colour = np.array([0.5, 0.4, 0.2], np.float32)
    for k in range(5):
        wall = surfaces.texture(np.random.default_rng(k), 64, colour, photo_probability=1.0)
        shade = wall / colour[:, None, None]
        assert np.allclose(shade[0], shade[1]) and np.allclose(shade[0], shade[2])
        assert abs(shade.mean() - 1.0) < 0.2       # the colour on average
        assert shade[0].std() > 0.05               # the photograph's light and shade
    # only walls drawn as photographs read them
    (photo_dir / "unreadable.jpg").write_bytes(b"not a jpeg")
    surfaces.photographs.cache_clear()
    surfaces.texture(np.random.default_rng(0), 64, colour, photo_probability=0.0)


def test_a_photograph_smaller_than_the_least_patch_is_used_whole(photo_dir):
    Image.fromarray(np.full((5, 6), 120, np.uint8)).save(photo_dir / "tiny.jpg", quality=100)
    wall = surfaces.texture(np.random.default_rng(0), 64, np.ones(3, np.float32),
                            photo_probability=1.0)
    assert wall.shape == (3, 64, 64) and np.allclose(wall, 1.0, atol=0.05)


def test_photo_walls_without_photographs_are_a_clear_error(photo_dir):
    with pytest.raises(FileNotFoundError, match="no photographs"):
        surfaces.texture(np.random.default_rng(0), 64, np.ones(3, np.float32),
                         photo_probability=1.0)


def test_the_shipped_photographs_shade_generated_walls():
    settings = GeneratorSettings(photo_wall_probability=1.0)
    drawn, shot = (_render(3, 0, GeneratorSettings(), label=10)[0],
                   _render(3, 0, settings, label=10)[0])
    assert len(surfaces.photographs()) >= 7
    assert drawn.shape == shot.shape and not np.array_equal(drawn, shot)


def test_source_jpeg_switch_compresses_the_source_photo():
    off = [synthetic.render_example(np.random.default_rng(k), GeneratorSettings(
        source_jpeg_probability=0.0), label=k % 10) for k in range(6)]
    on = [synthetic.render_example(np.random.default_rng(k), GeneratorSettings(
        source_jpeg_probability=1.0), label=k % 10) for k in range(6)]
    assert sum(not np.array_equal(a, b) for a, b in zip(off, on)) >= 5
    with pytest.raises(ValueError):
        GeneratorSettings(source_jpeg_probability=1.5)


def test_camera_at_source_noises_the_photo_before_the_crop_is_resized():
    """Sensor noise of a small source photo, resized up to the crop, is coarser than noise
    added to the crop's own pixels: a smaller share of the crop's pixel-to-pixel change."""
    def fine_share(at_source):
        settings = GeneratorSettings(camera_at_source=at_source, blur_sigma=0.01,
                                     noise_sigma=40.0, low_res_probability=1.0,
                                     source_jpeg_probability=0.0)
        shares = []
        for k in range(24):
            y = synthetic.render_example(np.random.default_rng(k), settings,
                                         label=k % 10).astype(np.float32).mean(-1)
            lap = np.abs(4 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2]
                         - y[1:-1, 2:])
            shares.append(lap.mean() / (y.std() + 1e-3))
        return float(np.median(shares))
    assert fine_share(True) < 0.7 * fine_share(False)


def test_emboss_switch_lights_the_rims_of_the_strokes(monkeypatch):
    settings = GeneratorSettings(emboss_probability=1.0, distortions=False)

    def renders():
        return [_render(3, k, settings, label=k % 10) for k in range(8)]
    monkeypatch.setattr(photo, "EMBOSS_STRENGTH", (0.0, 0.0))   # the same draws, no light
    unlit = renders()
    monkeypatch.setattr(photo, "EMBOSS_STRENGTH", (0.6, 0.6))
    lit = renders()
    changed = 0
    for (before, ink, _), (after, _, _) in zip(unlit, lit):
        diff = np.abs(after.astype(int) - before.astype(int)).max(axis=-1)
        if not diff.any():
            continue
        changed += 1
        # at output scale, the digits' strokes and one pixel around them
        near = Image.fromarray((ink > 0.5).astype(np.uint8) * 255).resize(
            diff.shape[::-1], Image.BOX)
        near = photo._dilate(np.asarray(near) > 0, 1)
        assert diff[near].mean() > 3 * diff[~near].mean()
    assert changed >= 6
    with pytest.raises(ValueError):
        GeneratorSettings(emboss_probability=-0.1)


def test_blur_fade_greys_and_flattens_only_blurred_photos():
    """With the same draws, a faded blurred crop has less colour spread and less contrast; a
    sharp one (no blur to fade with) is left as it was."""
    def renders(fade, blur):
        settings = GeneratorSettings(blur_fade=fade, blur_sigma=blur, noise_sigma=0.0,
                                     source_jpeg_probability=0.0)
        return [synthetic.render_example(np.random.default_rng(k), settings, label=k % 10)
                .astype(np.float32) for k in range(12)]

    def spread(x):
        return float(np.mean([(i.max(-1) - i.min(-1)).mean() for i in x]))

    def contrast(x):
        return float(np.mean([i.mean(-1).std() for i in x]))
    plain, faded = renders(0.0, 4.0), renders(1.0, 4.0)
    assert spread(faded) < 0.8 * spread(plain)
    assert contrast(faded) < contrast(plain)
    sharp = renders(0.0, 0.01)
    assert all(np.array_equal(a, b) for a, b in zip(sharp, renders(1.0, 0.01)))
    with pytest.raises(ValueError):
        GeneratorSettings(blur_fade=1.5)


def test_blur_cap_bounds_every_blur_drawn(monkeypatch):
    radii = []

    class Recorded(ImageFilter.GaussianBlur):
        def __init__(self, radius=2):
            radii.append(radius)
            super().__init__(radius)
    monkeypatch.setattr(photo.ImageFilter, "GaussianBlur", Recorded)

    def blurs(cap):
        radii.clear()
        for k in range(16):
            synthetic.render_example(np.random.default_rng(k), GeneratorSettings(
                blur_sigma=6.0, blur_cap=cap), label=k % 10)
        return list(radii)
    assert max(blurs(0.0)) > 2.0
    capped = blurs(2.0)
    assert capped and max(capped) <= 2.0
    with pytest.raises(ValueError):
        GeneratorSettings(blur_cap=-1.0)
