"""`pip install .` puts the project under one name, ``svhn_tfx``, next to whatever else is
installed: PyPI's ``schema`` library (a common dependency) and ours both keep working."""
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONSTRAINTS = os.path.join(REPO, "constraints.txt")
UV = os.path.join(os.path.dirname(sys.executable), "uv")

CHECK = textwrap.dedent("""
    import importlib, os, sys
    import schema                                   # PyPI's library, not ours
    assert schema.Schema({"n": int}).validate({"n": 3}) == {"n": 3}, "PyPI schema broken"
    from svhn_tfx import schema as contract         # ours
    assert contract.NUM_CLASSES == 11 and os.path.isfile(contract.SCHEMA_PATH)
    site = sys.argv[1]
    from svhn_tfx.components.generator import surfaces   # its photographs are package data
    assert surfaces.PHOTO_DIR.startswith(site) and len(surfaces.photographs()) >= 7
    for name in ("svhn_tfx.schema", "svhn_tfx.serving.server", "svhn_tfx.pipeline.svhn_pipeline",
                 "svhn_tfx.components.converters.cli"):
        module = importlib.import_module(name)
        assert module.__file__.startswith(site), (name, module.__file__)
    # the Transform module string the pipeline hands TFX resolves in the installed package
    from svhn_tfx.pipeline.svhn_pipeline import PREPROCESSING_FN
    module, _, fn = PREPROCESSING_FN.rpartition(".")
    assert callable(getattr(importlib.import_module(module), fn))
    # every console script's entry point loads from the installed package
    from importlib.metadata import entry_points
    scripts = [e for e in entry_points(group="console_scripts") if e.name.startswith("svhn-tfx")]
    assert len(scripts) == 4 and all(callable(e.load()) for e in scripts), scripts
    print("ok")
""")


@pytest.mark.timeout(600)
def test_pip_install_lives_beside_pypi_schema(tmp_path):
    venv = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # The pinned stack comes from this environment rather than a second 2 GB install. A .pth
    # line adds that directory but runs none of the .pth files in it, so this checkout's
    # editable svhn_tfx is not seen: only what `pip install .` puts into the new env is.
    with open(os.path.join(site, "pinned_stack.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    # built from a copy: setuptools writes build/ next to setup.py
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(os.path.join(REPO, "setup.py"), source)
    for room in ("schema", "components", "serving", "pipeline"):
        shutil.copytree(os.path.join(REPO, room), source / room,
                        ignore=shutil.ignore_patterns("__pycache__"))
    install = subprocess.run(
        [UV, "pip", "install", "--python", python, "-q", "--no-deps", "-c", CONSTRAINTS,
         "schema", str(source)], capture_output=True, text=True, timeout=500)
    assert install.returncode == 0, install.stderr
    # run from an empty folder: the checkout's own folders must not be what gets imported
    check = subprocess.run([python, "-c", CHECK, site], cwd=tmp_path, capture_output=True,
                           text=True, timeout=300)
    assert check.returncode == 0, check.stderr[-3000:]
    assert check.stdout.strip().endswith("ok")
    shown = subprocess.run([str(venv / "bin" / "svhn-tfx-serve"), "--help"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0 and "--model_base_path" in shown.stdout, shown.stderr[-2000:]
