"""Training throughput: the SvhnTrainer input path (raw GZIP TFRecords of encoded images, parsed
and decoded by the Transform graph in tf.data, calibration records filtered out) vs. model.fit
on the same images held in memory as decoded numpy arrays (the seed project's approach). Same
model, batch size and step count."""
import time

import numpy as np

import components  # noqa: F401
from components.transform.preprocessing import TRANSFORMED_IMAGE_KEY, TRANSFORMED_LABEL_KEY

WARMUP_STEPS = 20


def _timed_fit(model, data, steps: int, **fit_args) -> float:
    model.fit(data, steps_per_epoch=WARMUP_STEPS, epochs=1, verbose=0, **fit_args)  # trace
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, **fit_args)
    return time.perf_counter() - start


def run(examples_uri: str, transform_graph_uri: str, steps: int,
        batch_size: int = 128) -> dict:
    import tensorflow as tf
    import tensorflow_transform as tft
    from tfx.types import standard_artifacts

    from components.trainer.component import transformed_dataset
    from components.trainer.model import build_model

    examples = standard_artifacts.Examples()
    examples.uri = examples_uri
    examples.split_names = '["train", "eval"]'
    tft_output = tft.TFTransformOutput(transform_graph_uri)

    tf.keras.utils.set_random_seed(0)
    records = transformed_dataset(examples, "train", tft_output, batch_size, shuffle=True,
                                  calibration=False)
    pipeline_seconds = _timed_fit(build_model(1e-3), records, steps)

    # The same images, decoded once into arrays (not timed), then fitted from memory.
    in_memory = transformed_dataset(examples, "train", tft_output, 1024, shuffle=False,
                                    calibration=False, repeat=False)
    images, labels = [], []
    for x, y in in_memory:
        images.append(x.numpy())
        labels.append(y.numpy())
    images, labels = np.concatenate(images), np.concatenate(labels)
    tf.keras.utils.set_random_seed(0)
    model = build_model(1e-3)
    model.fit(images[:WARMUP_STEPS * batch_size], labels[:WARMUP_STEPS * batch_size],
              batch_size=batch_size, epochs=1, verbose=0)  # trace
    epochs = max(1, round(steps * batch_size / len(labels)))
    start = time.perf_counter()
    model.fit(images, labels, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)
    memory_seconds = time.perf_counter() - start
    trainer_rate = steps * batch_size / pipeline_seconds
    memory_rate = epochs * len(labels) / memory_seconds
    return {
        "steps": steps, "batch_size": batch_size, "train_images_in_memory": int(len(labels)),
        "in_memory_epochs": epochs,
        "trainer_images_per_s": round(trainer_rate, 1),
        "in_memory_images_per_s": round(memory_rate, 1),
        "ratio": round(trainer_rate / memory_rate, 3),
    }


def table(result: dict) -> str:
    return "\n".join([
        "| input path | images/s |", "|---|---|",
        f"| SvhnTrainer: raw records, Transform graph in tf.data | {result['trainer_images_per_s']} |",
        f"| model.fit on in-memory arrays | {result['in_memory_images_per_s']} |",
        f"\nRatio {result['ratio']:.2f} (target ≥ 0.9); {result['steps']} steps of "
        f"{result['batch_size']}."])
