"""Training throughput: the SvhnTrainer input path (raw GZIP TFRecords of encoded images, parsed
and decoded by the Transform graph in tf.data, calibration records filtered out, decoded images
cached on local disk after the first pass) vs. model.fit on the same images held in memory as
decoded numpy arrays (the seed project's approach). Same model, batch size and step count. The
first pass, which decodes, is timed on its own."""
import os
import tempfile
import time

import numpy as np

import svhn_tfx.components  # noqa: F401

WARMUP_STEPS = 20
# This machine's speed drifts (identical runs minutes apart differ up to 2x), so the two
# paths are timed in interleaved rounds and the headline is the median round's ratio.
ROUNDS = 5


def run(examples_uri: str, transform_graph_uri: str, steps: int, batch_size: int = 128,
        rounds: int = ROUNDS) -> dict:
    import tensorflow as tf
    import tensorflow_transform as tft

    from svhn_tfx.components.trainer.component import Records, examples_artifact, transformed_dataset
    from svhn_tfx.components.trainer.model import build_model

    examples = examples_artifact(examples_uri)
    tft_output = tft.TFTransformOutput(transform_graph_uri)
    # The same images, decoded once into arrays (not timed), then fitted from memory.
    images, labels = [], []
    for x, y in transformed_dataset(examples, "train", tft_output, 1024, shuffle=False,
                                    records=Records.TRAINED_ON, repeat=False):
        images.append(x.numpy())
        labels.append(y.numpy())
    images, labels = np.concatenate(images), np.concatenate(labels)
    epochs = max(1, round(steps * batch_size / len(labels)))

    tf.keras.utils.set_random_seed(0)
    trainer_model, memory_model = build_model(1e-3), build_model(1e-3)
    with tempfile.TemporaryDirectory(prefix="bench-decoded-") as cache_dir:
        records = transformed_dataset(examples, "train", tft_output, batch_size, shuffle=True,
                                      records=Records.TRAINED_ON,
                                      cache_file=os.path.join(cache_dir, "train"))
        first_pass_steps = -(-len(labels) // batch_size) + 1  # decodes and caches every image
        start = time.perf_counter()
        trainer_model.fit(records, steps_per_epoch=first_pass_steps, epochs=1, verbose=0)
        first_pass_rate = first_pass_steps * batch_size / (time.perf_counter() - start)
        memory_model.fit(images[:WARMUP_STEPS * batch_size], labels[:WARMUP_STEPS * batch_size],
                         batch_size=batch_size, epochs=1, verbose=0)  # trace
        measured = []
        for _ in range(rounds):
            start = time.perf_counter()
            trainer_model.fit(records, steps_per_epoch=steps, epochs=1, verbose=0)
            trainer_rate = steps * batch_size / (time.perf_counter() - start)
            start = time.perf_counter()
            memory_model.fit(images, labels, batch_size=batch_size, epochs=epochs, shuffle=True,
                             verbose=0)
            memory_rate = epochs * len(labels) / (time.perf_counter() - start)
            measured.append({"trainer_images_per_s": round(trainer_rate, 1),
                             "in_memory_images_per_s": round(memory_rate, 1),
                             "ratio": round(trainer_rate / memory_rate, 3)})
    return {"steps": steps, "batch_size": batch_size, "train_images_in_memory": int(len(labels)),
            "in_memory_epochs": epochs, "rounds": measured,
            "first_pass_images_per_s": round(first_pass_rate, 1),
            "ratio": float(np.median([r["ratio"] for r in measured]))}


def table(result: dict) -> str:
    rows = ["| round | SvhnTrainer input: raw records, Transform graph in tf.data (images/s) | "
            "model.fit on in-memory arrays (images/s) | ratio |", "|---|---|---|---|"]
    rows += [f"| {i} | {r['trainer_images_per_s']} | {r['in_memory_images_per_s']} | "
             f"{r['ratio']:.2f} |" for i, r in enumerate(result["rounds"], 1)]
    rows.append(f"\nMedian ratio {result['ratio']:.2f} over {len(result['rounds'])} interleaved "
                f"rounds (target ≥ 0.9); {result['steps']} steps of {result['batch_size']} "
                f"against {result['in_memory_epochs']} epochs of "
                f"{result['train_images_in_memory']} images. The trainer's first pass, which "
                f"decodes and caches every image, ran at {result['first_pass_images_per_s']} "
                f"images/s.")
    return "\n".join(rows)
