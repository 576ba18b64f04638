"""The trainer's augmentation: training images vary, labels and the pixel range do not."""
import numpy as np
import pytest
import tensorflow as tf

from svhn_tfx.components.trainer.augment import augment, augmented_batches


@pytest.fixture(scope="module")
def digit_like():
    """One crop: a dark bar (a bold "1") on a light reddish wall, 400 times."""
    image = np.array([0.8, 0.6, 0.5], np.float32) * np.ones((32, 32, 1), np.float32)
    image[6:26, 12:20] = 0.1
    return np.repeat(image[None], 400, axis=0)


def test_labels_shape_and_pixel_range_are_kept(digit_like):
    labels = tf.range(len(digit_like), dtype=tf.int64) % 11
    images, out_labels = augment(tf.constant(digit_like), labels, seed=[0, 0])
    assert images.shape == digit_like.shape and images.dtype == tf.float32
    np.testing.assert_array_equal(out_labels.numpy(), labels.numpy())
    assert 0.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 1.0


def test_each_image_gets_its_own_draw(digit_like):
    images, _ = augment(tf.constant(digit_like), tf.zeros([len(digit_like)], tf.int64), [0, 0])
    flat = np.round(images.numpy().reshape(len(digit_like), -1), 4)
    assert len(np.unique(flat, axis=0)) > 0.9 * len(digit_like)


def test_both_polarities_and_the_digit_stays_near_the_centre(digit_like):
    images, _ = augment(tf.constant(digit_like), tf.zeros([len(digit_like)], tf.int64), [0, 0])
    luminance = images.numpy().mean(axis=3)
    bar, wall = luminance[:, 8:24, 15:17].mean(axis=(1, 2)), luminance[:, :, :6].mean(axis=(1, 2))
    dark_on_light = np.mean(bar < wall)
    assert 0.35 < dark_on_light < 0.65        # inverted about half the time
    assert np.all(np.abs(bar - wall) > 0.4)   # shifted 2 pixels at most: the bar stays central


def test_a_run_is_reproducible_per_seed_and_batches_differ(digit_like):
    """Stateless draws: the same seed gives the same batches whatever order tf.data's
    parallel calls take; another batch number or seed gives others."""
    batches = tf.data.Dataset.from_tensors((digit_like[:64], np.zeros(64, np.int64))).repeat(4)

    def run(seed):
        return [images.numpy() for images, _ in augmented_batches(batches, seed)]

    first, again, other = run(7), run(7), run(8)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(first[0], first[1]) and not np.allclose(first[0], other[0])
