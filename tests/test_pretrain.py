"""Stale work is not reused: `make pretrain`'s generated data only while the generator that
made it is today's, a cached Trainer only while the code that trains is today's; and the
recipe's settings reach the Trainer (make pretrain's as pretrained/ was made)."""
import dataclasses
import glob
import os
import shutil

import pytest

from svhn_tfx import schema
from svhn_tfx.components.generator import surfaces, synthetic
from svhn_tfx.components.generator.settings import GeneratorSettings
from svhn_tfx.components.source_digest import source_digest
from svhn_tfx.components.trainer import recipe
from svhn_tfx.components.trainer.component import code_version
from svhn_tfx.pipeline import configs, pretrain_runner, svhn_pipeline


def _shards(root, split):
    """Which files the split holds (rewriting with the same images makes new ones)."""
    return {p: (os.stat(p).st_ino, os.stat(p).st_mtime_ns)
            for p in glob.glob(os.path.join(root, split, "*"))}


def test_fingerprint_changes_with_the_settings_count_and_seed():
    base = synthetic.fingerprint(100, 1)
    assert synthetic.fingerprint(100, 1) == base
    assert synthetic.fingerprint(101, 1) != base
    assert synthetic.fingerprint(100, 2) != base
    assert synthetic.fingerprint(100, 1, dataclasses.replace(
        GeneratorSettings(), aspect_stretch=(0.75, 1.3))) != base


def test_fingerprint_changes_with_the_photographs_walls_may_show(tmp_path, monkeypatch):
    for path in surfaces.photo_paths():
        shutil.copy(path, tmp_path)
    base = synthetic.fingerprint(100, 1)
    monkeypatch.setattr(surfaces, "PHOTO_DIR", str(tmp_path))
    assert synthetic.fingerprint(100, 1) == base
    (tmp_path / "brick.jpg").write_bytes(b"another photograph")
    assert synthetic.fingerprint(100, 1) != base


def test_pretrain_data_is_reused_while_unchanged_and_remade_when_the_generator_changes(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(configs, "PRETRAIN_TRAIN_EXAMPLES", 12)
    monkeypatch.setattr(configs, "PRETRAIN_EVAL_EXAMPLES", 6)
    root = str(tmp_path)
    pretrain_runner._write_data(root)
    first = _shards(root, schema.TRAIN_SPLIT)
    assert first

    pretrain_runner._write_data(root)
    assert _shards(root, schema.TRAIN_SPLIT) == first
    assert "reusing train" in capsys.readouterr().out

    # data of an older generator (its fingerprint differs) is not taken for today's
    with open(os.path.join(root, f".{schema.TRAIN_SPLIT}.generator"), "w") as f:
        f.write("made by another generator\n")
    pretrain_runner._write_data(root)
    out = capsys.readouterr().out
    assert "train was made by another generator" in out and "reusing eval" in out
    assert _shards(root, schema.TRAIN_SPLIT) != first

    # as is a split whose fingerprint file is missing (made before there was one)
    os.remove(os.path.join(root, f".{schema.EVAL_SPLIT}.generator"))
    pretrain_runner._write_data(root)
    assert "eval was made by another generator" in capsys.readouterr().out


def test_source_digest_follows_the_modules_code_and_nothing_else(tmp_path):
    package = tmp_path / "package"
    package.mkdir()
    (package / "model.py").write_text("FILTERS = 32\n")
    (package / "notes.txt").write_text("first")
    base = source_digest(str(package))
    assert source_digest(str(package)) == base
    (package / "notes.txt").write_text("second")
    assert source_digest(str(package)) == base
    assert source_digest(str(package), extra="seed 1") != base
    (package / "model.py").write_text("FILTERS = 48\n")
    assert source_digest(str(package)) != base


def test_the_pipeline_s_trainer_is_keyed_by_the_code_that_trains(tmp_path):
    """TFX caches a step by its inputs and parameters: without the code's digest among them,
    a run after a change to the model would hand back the model trained before it."""
    pipeline = svhn_pipeline.create_pipeline(
        pipeline_name="cache-key", pipeline_root=str(tmp_path / "pipeline"),
        data_root=str(tmp_path / "data"), serving_model_dir=str(tmp_path / "serving"),
        train_steps=10, batch_size=8, learning_rate=1e-3,
        splits=[schema.TRAIN_SPLIT, schema.EVAL_SPLIT])
    trainer, = [c for c in pipeline.components if c.id == "SvhnTrainer"]
    assert trainer.exec_properties["code_version"] == code_version()
    assert len(code_version()) == 64


class _Captured(Exception):
    pass


def test_the_trainer_and_make_pretrain_move_their_inputs_as_the_recipe_says(
        tmp_path, monkeypatch):
    """The demo's fine-tuning and make pretrain (which made the repository's pretrained/)
    train on adversarially moved images; a pipeline can still ask for plain steps."""
    def trainer_epsilon(**overrides):
        pipeline = svhn_pipeline.create_pipeline(
            pipeline_name="epsilon", pipeline_root=str(tmp_path / "pipeline"),
            data_root=str(tmp_path / "data"), serving_model_dir=str(tmp_path / "serving"),
            train_steps=10, batch_size=8, learning_rate=1e-3,
            splits=[schema.TRAIN_SPLIT, schema.EVAL_SPLIT], **overrides)
        trainer, = [c for c in pipeline.components if c.id == "SvhnTrainer"]
        return trainer.exec_properties["adversarial_epsilon"]

    assert recipe.ADVERSARIAL_EPSILON > 0
    assert trainer_epsilon() == recipe.ADVERSARIAL_EPSILON
    assert trainer_epsilon(adversarial_epsilon=0.0) == 0.0

    ran = {}

    def capture(_runner, pipeline):
        ran["epsilon"], = [c.exec_properties["adversarial_epsilon"]
                           for c in pipeline.components if c.id == "SvhnTrainer"]
        raise _Captured

    monkeypatch.setattr(configs, "PRETRAIN_TRAIN_EXAMPLES", 12)
    monkeypatch.setattr(configs, "PRETRAIN_EVAL_EXAMPLES", 6)
    monkeypatch.setattr(pretrain_runner, "ROOT", str(tmp_path / "pretrain"))
    monkeypatch.setattr(pretrain_runner.tfx.orchestration.LocalDagRunner, "run", capture)
    with pytest.raises(_Captured):
        pretrain_runner.run()
    assert ran["epsilon"] == configs.PRETRAIN_ADVERSARIAL_EPSILON == recipe.ADVERSARIAL_EPSILON
