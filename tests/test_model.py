"""The CNN's fixed input layers: what the network sees of a crop."""
import numpy as np
import pytest
from scipy import ndimage

from svhn_tfx.components.trainer import recipe
from svhn_tfx.components.trainer.model import AdversarialModel, build_model
from svhn_tfx.components.trainer.tried import (AmplitudeMix, BlurPool, GaussianLowPass,
                                                 Luminance, MixStyle, RandomConvolution,
                                                 RandomErasing, SharpnessAwareModel,
                                                 SmoothedSparseCrossentropy, WeightAverage)


@pytest.mark.parametrize("sigma", [0.7, 1.0, 1.5])
def test_the_input_low_pass_is_a_gaussian_blur_with_mirrored_borders(sigma):
    images = np.random.default_rng(0).random((2, 32, 32, 3)).astype(np.float32)
    got = GaussianLowPass(sigma)(images).numpy()
    np.testing.assert_allclose(got, ndimage.gaussian_filter(images, (0, sigma, sigma, 0)),
                               atol=1e-5)
    assert got.std() < 0.6 * images.std()   # it blurred


def test_the_input_low_pass_keeps_a_flat_image_flat_borders_included():
    flat = np.full((1, 32, 32, 3), 0.37, np.float32)
    np.testing.assert_allclose(GaussianLowPass(1.0)(flat).numpy(), flat, atol=1e-6)


def test_the_low_pass_is_part_of_the_model_and_has_no_weights():
    plain = build_model(1e-3, input_blur_sigma=0.0)
    blurred = build_model(1e-3, input_blur_sigma=1.0)
    assert any(isinstance(layer, GaussianLowPass) for layer in blurred.layers)
    assert not any(isinstance(layer, GaussianLowPass) for layer in plain.layers)
    # the same weights fit both: pretrained weights load whichever way the input is filtered
    assert [w.shape for w in plain.get_weights()] == [w.shape for w in blurred.get_weights()]
    blurred.set_weights(plain.get_weights())
    images = np.random.default_rng(1).random((4, 32, 32, 3)).astype(np.float32)
    assert not np.allclose(plain(images, training=False).numpy(),
                           blurred(images, training=False).numpy())


def test_a_greyscale_model_reads_two_crops_of_the_same_luminance_alike():
    rng = np.random.default_rng(5)
    colour = rng.random((2, 32, 32, 3)).astype(np.float32)
    luma = colour @ np.array([0.299, 0.587, 0.114], np.float32)
    grey = np.repeat(luma[..., None], 3, axis=-1)
    np.testing.assert_allclose(Luminance()(colour).numpy(), grey, atol=1e-6)
    coloured = build_model(1e-3)
    greyscale = build_model(1e-3, greyscale_input=True)
    greyscale.set_weights(coloured.get_weights())   # weights made on colour load unchanged
    np.testing.assert_allclose(greyscale(colour, training=False).numpy(),
                               greyscale(grey, training=False).numpy(), atol=1e-4)
    assert not np.allclose(coloured(colour, training=False).numpy(),
                           coloured(grey, training=False).numpy(), atol=1e-4)


def test_random_convolution_changes_only_training_batches():
    images = np.random.default_rng(2).random((8, 32, 32, 3)).astype(np.float32)
    layer = RandomConvolution(1.0)
    np.testing.assert_array_equal(layer(images, training=False).numpy(), images)
    seen = layer(images, training=True).numpy()
    assert seen.shape == images.shape and np.isfinite(seen).all()
    assert not np.allclose(seen, images)
    np.testing.assert_array_equal(RandomConvolution(0.0)(images, training=True).numpy(), images)


def test_random_convolution_of_side_one_mixes_colours_within_each_pixel():
    import tensorflow as tf
    images = np.random.default_rng(4).random((2, 32, 32, 3)).astype(np.float32)
    touched = images.copy()
    touched[0, 10, 20] = 1.0 - touched[0, 10, 20]
    layer = RandomConvolution(1.0, sizes=(1,))
    tf.random.set_seed(5)
    before = layer(images, training=True).numpy()
    tf.random.set_seed(5)
    after = layer(touched, training=True).numpy()
    changed = np.argwhere(np.abs(after - before).max(-1) > 1e-6)
    np.testing.assert_array_equal(changed, [[0, 10, 20]])


@pytest.mark.parametrize("option, layer_type", [("random_conv_probability", RandomConvolution),
                                                ("random_erasing_probability", RandomErasing),
                                                ("amplitude_mix_probability", AmplitudeMix)])
def test_a_model_trained_with_an_augmenting_layer_serves_as_the_one_without(option, layer_type):
    plain = build_model(1e-3)
    augmented = build_model(1e-3, **{option: 1.0})
    assert any(isinstance(layer, layer_type) for layer in augmented.layers)
    augmented.set_weights(plain.get_weights())
    images = np.random.default_rng(3).random((4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(augmented(images, training=False).numpy(),
                               plain(images, training=False).numpy(), atol=1e-6)


def test_mixstyle_restyles_training_batches_with_statistics_between_two_images():
    import tensorflow as tf
    rng = np.random.default_rng(6)
    # every channel of image i has mean i and deviation i + 1
    maps = (rng.standard_normal((4, 8, 8, 5)) * np.arange(1, 5)[:, None, None, None]
            + np.arange(4)[:, None, None, None]).astype(np.float32)
    layer = MixStyle(1.0)
    np.testing.assert_array_equal(layer(maps, training=False).numpy(), maps)
    np.testing.assert_array_equal(MixStyle(0.0)(maps, training=True).numpy(), maps)
    tf.random.set_seed(7)
    mixed = layer(maps, training=True).numpy()
    means, stds = maps.mean(axis=(1, 2)), maps.std(axis=(1, 2))
    new_means, new_stds = mixed.mean(axis=(1, 2)), mixed.std(axis=(1, 2))
    # each image's new statistics lie within the range the batch's images span
    assert np.all(new_means >= means.min(0) - 1e-3) and np.all(new_means <= means.max(0) + 1e-3)
    assert np.all(new_stds >= stds.min(0) - 1e-3) and np.all(new_stds <= stds.max(0) + 1e-3)
    assert not np.allclose(mixed, maps, atol=1e-2)
    # the pattern inside each map is the image's own, only its style moved
    np.testing.assert_allclose((mixed - new_means[:, None, None]) / new_stds[:, None, None],
                               (maps - means[:, None, None]) / stds[:, None, None], atol=1e-3)


def test_amplitude_mix_keeps_each_image_s_phase_and_blends_only_amplitudes():
    import tensorflow as tf
    rng = np.random.default_rng(11)
    a = (0.5 + 0.05 * rng.standard_normal((32, 32, 3))).astype(np.float32)
    layer = AmplitudeMix(1.0)
    np.testing.assert_array_equal(layer(a[None], training=False).numpy(), a[None])
    # a circular shift changes only the phase: partners with a's amplitudes change nothing
    shifted = np.stack([a, np.roll(a, (5, 9), axis=(0, 1))])
    np.testing.assert_allclose(layer(shifted, training=True).numpy(), shifted, atol=1e-4)
    # with other images' amplitudes the pixels move, each image's phase stays its own
    images = (0.5 + 0.05 * rng.standard_normal((8, 32, 32, 3))).astype(np.float32)
    tf.random.set_seed(12)
    mixed = layer(images, training=True).numpy()
    assert np.abs(mixed - images).max(axis=(1, 2, 3)).mean() > 1e-2
    before, after = (np.fft.fft2(x, axes=(1, 2)) for x in (images, mixed))
    strong = (np.abs(before) > 0.5) & (np.abs(after) > 0.5)
    np.testing.assert_allclose(np.angle(after[strong] / before[strong]), 0.0, atol=1e-3)
    # adversarial steps take the loss's gradient through it: finite even where a spectrum is 0
    flat = tf.constant(np.concatenate([np.zeros((2, 32, 32, 3)), images[:2]]), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(flat)
        total = tf.reduce_sum(layer(flat, training=True) ** 2)
    assert np.isfinite(tape.gradient(total, flat).numpy()).all()


def test_random_erasing_paints_one_flat_rectangle_on_training_images_only():
    import tensorflow as tf
    images = np.random.default_rng(8).random((16, 32, 32, 3)).astype(np.float32)
    layer = RandomErasing(1.0)
    np.testing.assert_array_equal(layer(images, training=False).numpy(), images)
    np.testing.assert_array_equal(RandomErasing(0.0)(images, training=True).numpy(), images)
    tf.random.set_seed(9)
    erased = layer(images, training=True).numpy()
    for before, after in zip(images, erased):
        changed = np.any(after != before, axis=-1)
        rows, cols = np.nonzero(changed)
        # one axis-aligned rectangle, within the paper's areas, in one colour
        box = changed[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert box.all()
        assert 0.02 * 1024 - 64 <= changed.sum() <= 0.4 * 1024 + 64
        assert np.allclose(after[changed], after[changed][0])


def test_a_sharpness_aware_step_applies_the_gradient_taken_at_the_ascent_point():
    import tf_keras as keras
    rng = np.random.default_rng(10)
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 1))
    w = rng.standard_normal((3, 1))
    rho = 0.3
    inputs = keras.Input((3,))
    net = SharpnessAwareModel(inputs, keras.layers.Dense(1, use_bias=False)(inputs), rho=rho)
    net.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    net.set_weights([w])
    net.train_on_batch(x.astype(np.float32), y.astype(np.float32))

    def gradient(v):   # of mean((x v - y)^2)
        return 2 * x.T @ (x @ v - y) / len(x)
    g = gradient(w)
    expected = w - gradient(w + rho * g / np.linalg.norm(g))
    np.testing.assert_allclose(net.get_weights()[0], expected, rtol=1e-4, atol=1e-5)
    assert not np.allclose(expected, w - g, atol=1e-3)   # not the plain step
    assert isinstance(build_model(1e-3, sam_rho=0.05, adversarial_epsilon=0.0),
                      SharpnessAwareModel)
    assert not isinstance(build_model(1e-3), SharpnessAwareModel)


def test_antialiased_pooling_halves_the_map_and_blurs_before_the_stride():
    # a one-pixel checkerboard, the finest detail there is: the low-pass leaves its mean
    board = (np.indices((8, 8)).sum(0) % 2).astype(np.float32)[None, :, :, None]
    pooled = BlurPool()(board).numpy()
    assert pooled.shape == (1, 4, 4, 1)
    np.testing.assert_allclose(pooled[0, 1:-1, 1:-1, 0], 0.5, atol=1e-6)
    net = build_model(1e-3, antialiased_pooling=True)
    assert sum(isinstance(layer, BlurPool) for layer in net.layers) == 3
    assert net.output_shape == build_model(1e-3).output_shape


def test_instance_norm_blocks_normalise_each_image_alone():
    import tf_keras as keras
    net = build_model(1e-3, instance_norm_blocks=1)
    norms = [type(layer).__name__ for layer in net.layers
             if isinstance(layer, (keras.layers.GroupNormalization,
                                   keras.layers.BatchNormalization))]
    assert norms[:2] == ["GroupNormalization"] * 2 and set(norms[2:]) == {"BatchNormalization"}
    images = np.random.default_rng(3).random((4, 32, 32, 3)).astype(np.float32)
    # in training, batch norm would mix the batch; here the first block must not
    features = keras.Model(net.input, net.layers[[type(layer).__name__ for layer in
                                                  net.layers].index("ReLU", 3)].output)
    np.testing.assert_allclose(features(images[:1], training=True).numpy(),
                               features(images, training=True).numpy()[:1], atol=1e-5)


def test_weight_average_leaves_the_mean_of_the_weights_after_its_start():
    import tf_keras as keras
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(self.model.get_weights())

    net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    net.compile(keras.optimizers.SGD(0.1), "mse")
    x = np.random.default_rng(3).random((40, 3)).astype(np.float32)
    y = np.random.default_rng(4).random((40, 2)).astype(np.float32)
    net.fit(x, y, batch_size=2, epochs=1, verbose=0,
            callbacks=[Record(), WeightAverage(20, average_from=0.5, every=2)])
    assert len(seen) == 20
    # steps 12, 14, ..., 20 (1-based) are averaged; the last weights are not what is left
    expected = [np.mean([s[i] for s in seen[11::2]], axis=0) for i in range(2)]
    for got, want, last in zip(net.get_weights(), expected, seen[-1]):
        np.testing.assert_allclose(got, want, rtol=1e-6)
        assert not np.allclose(got, last)


def test_smoothed_targets_spread_the_smoothing_share_over_every_class():
    logits = np.random.default_rng(5).normal(size=(6, 11)).astype(np.float32)
    labels = np.array([0, 3, 10, 7, 7, 1])
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    targets = np.full((6, 11), 0.1 / 11) + 0.9 * np.eye(11)[labels]
    want = -(targets * log_p).sum(1).mean()
    got = SmoothedSparseCrossentropy(11, 0.1)(labels, logits).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5)
    plain = -log_p[np.arange(6), labels].mean()
    np.testing.assert_allclose(SmoothedSparseCrossentropy(11, 0.0)(labels, logits).numpy(),
                               plain, rtol=1e-5)


def test_adversarial_training_moves_each_pixel_within_epsilon_towards_a_higher_loss():
    import tensorflow as tf
    import tf_keras as keras
    rng = np.random.default_rng(11)
    x = rng.uniform(0.1, 0.9, (16, 4)).astype(np.float32)
    y = (x @ rng.standard_normal((4, 1)) + 3.0).astype(np.float32)   # far from the start
    epsilon = 0.05
    inputs = keras.Input((4,))
    net = AdversarialModel(inputs, keras.layers.Dense(1)(inputs), epsilon=epsilon)
    net.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    moved = net.perturbed(tf.constant(x), tf.constant(y)).numpy()
    change = moved - x
    assert np.abs(change).max() <= epsilon + 1e-6
    # every pixel moved by at least a quarter epsilon, the way that raises the squared error
    with tf.GradientTape() as tape:
        xs = tf.constant(x)
        tape.watch(xs)
        loss = tf.reduce_mean((net(xs) - y) ** 2)
    uphill = np.sign(tape.gradient(loss, xs).numpy())
    assert (change * uphill >= 0.25 * epsilon - 1e-6).all()
    assert tf.reduce_mean((net(moved) - y) ** 2) > loss
    before = net.get_weights()[0].copy()
    net.train_on_batch(x, y)
    assert not np.allclose(net.get_weights()[0], before)
    shipped = build_model(1e-3)   # the recipe trains on moved inputs; 0 gives plain steps
    assert isinstance(shipped, AdversarialModel) and shipped.epsilon == recipe.ADVERSARIAL_EPSILON
    assert not isinstance(build_model(1e-3, adversarial_epsilon=0.0), AdversarialModel)
    with pytest.raises(ValueError, match="alternatives"):
        build_model(1e-3, sam_rho=0.05)


def test_a_smooth_adversarial_field_moves_whole_regions_within_its_bound_towards_a_higher_loss():
    import tensorflow as tf
    import tf_keras as keras
    rng = np.random.default_rng(12)
    x = rng.uniform(0.3, 0.7, (8, 16, 16, 1)).astype(np.float32)
    y = rng.uniform(2.0, 3.0, (8, 1)).astype(np.float32)   # far from the start
    epsilon, smooth = 1e-4, 0.1
    inputs = keras.Input((16, 16, 1))
    net = AdversarialModel(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(inputs)),
                           epsilon=epsilon, smooth_epsilon=smooth)
    net.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    moved = net.perturbed(tf.constant(x), tf.constant(y)).numpy()
    change = moved - x
    assert np.abs(change).max() <= epsilon + smooth + 1e-6
    assert np.abs(change).mean() > 0.25 * smooth   # far more than the per-pixel move
    # upsampled from 4x4 cells: neighbouring pixels differ by at most a quarter of its range
    assert np.abs(np.diff(change, axis=1)).max() <= 2 * epsilon + 2 * smooth / 4 + 1e-6
    assert np.abs(np.diff(change, axis=2)).max() <= 2 * epsilon + 2 * smooth / 4 + 1e-6
    assert tf.reduce_mean((net(moved) - y) ** 2) > tf.reduce_mean((net(x) - y) ** 2)


def test_a_relative_bound_moves_each_image_by_its_own_share_of_its_contrast():
    import tensorflow as tf
    import tf_keras as keras
    rng = np.random.default_rng(4)
    flat = rng.uniform(0.45, 0.55, (4, 8, 8, 3))
    contrasted = rng.uniform(0.0, 1.0, (4, 8, 8, 3))
    x = np.concatenate([flat, contrasted]).astype(np.float32)
    y = rng.integers(0, 3, 8)
    inputs = keras.Input((8, 8, 3))
    net = AdversarialModel(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)),
                           epsilon=0.5, relative_epsilon=0.1)   # the fixed bound is unused
    net.compile(optimizer=keras.optimizers.SGD(0.01),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    change = np.abs(net.perturbed(tf.constant(x), tf.constant(y)).numpy() - x).reshape(8, -1)
    bound = 0.1 * x.reshape(8, -1).std(1)
    np.testing.assert_allclose(change.max(1), bound, rtol=1e-3)   # sign steps reach the bound
    assert change[4:].max() > 5 * change[:4].max()   # the contrasted images move further


def test_the_consistency_term_trains_clean_and_moved_answers_towards_each_other():
    import tensorflow as tf
    import tf_keras as keras
    rng = np.random.default_rng(3)
    x = rng.uniform(0.0, 1.0, (64, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 3, 64)

    def disagreement_after_training(consistency):
        tf.random.set_seed(0)
        inputs = keras.Input((8, 8, 1))
        logits = keras.layers.Dense(3)(keras.layers.Flatten()(inputs))
        net = AdversarialModel(inputs, logits, epsilon=0.05, consistency=consistency)
        net.compile(optimizer=keras.optimizers.Adam(0.05),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        net.fit(x, y, batch_size=32, epochs=30, verbose=0)
        moved = net.perturbed(tf.constant(x), tf.constant(y))
        return float(tf.reduce_mean(keras.losses.kl_divergence(
            tf.nn.softmax(net(x)), tf.nn.softmax(net(moved)))))

    assert disagreement_after_training(10.0) < 0.5 * disagreement_after_training(0.0)


def test_sgd_warms_its_rate_up_from_zero_then_follows_adam_s_cosine():
    from svhn_tfx.components.trainer.model import FINAL_LR_FRACTION
    from svhn_tfx.components.trainer.tried import SGD_WARMUP_FRACTION
    steps, peak = 1000, 0.05
    sgd = build_model(peak, steps, sgd_momentum=0.9).optimizer
    adam = build_model(peak, steps).optimizer
    assert type(sgd).__name__ == "SGD" and sgd.nesterov and sgd.momentum == 0.9
    assert type(adam).__name__ == "Adam"
    warmup = int(steps * SGD_WARMUP_FRACTION)
    sgd_rate, adam_rate = sgd._learning_rate, adam._learning_rate
    assert float(sgd_rate(0)) == 0.0 and float(adam_rate(0)) == pytest.approx(peak)
    assert float(sgd_rate(warmup // 2)) == pytest.approx(peak / 2, rel=1e-3)
    assert float(sgd_rate(warmup)) == pytest.approx(peak, rel=1e-3)
    for rate in (sgd_rate, adam_rate):   # both end at the same fraction of the peak
        assert float(rate(steps)) == pytest.approx(peak * FINAL_LR_FRACTION, rel=1e-3)
