"""svhn-tfx: a TFX pipeline that trains, calibrates and serves an SVHN digit reader.

Install with the pinned stack: ``pip install -c constraints.txt -e .[dev]`` (the Makefile
does this). Python 3.10 and TFX 1.16 are the newest that install on glibc 2.36.
"""
import ast
import os

from setuptools import find_packages, setup

# The repository's top-level folders, installed under one package name so that generic names
# (``schema`` is also a PyPI library) never collide in site-packages: schema/ is svhn_tfx.schema.
NAMESPACE = "svhn_tfx"
TOP_LEVEL = ("schema", "components", "serving", "pipeline")


def _font_families():
    """The generator's font families (components/generator/fonts.py), read without importing it."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "components", "generator",
                        "fonts.py")
    with open(path) as f:
        for node in ast.parse(f.read()).body:
            if isinstance(node, ast.AnnAssign) and node.target.id == "FONTPKG_FAMILIES":
                return ast.literal_eval(node.value)
    raise RuntimeError(f"FONTPKG_FAMILIES not found in {path}")


setup(
    name="svhn-tfx",
    version="0.1.0",
    description="TFX pipeline: SVHN digits from raw image bytes to a calibrated TF Serving model",
    python_requires=">=3.10,<3.11",
    packages=[f"{NAMESPACE}.{name}" for name in find_packages(
        include=[pattern for top in TOP_LEVEL for pattern in (top, f"{top}.*")])],
    package_dir={f"{NAMESPACE}.{top}": top for top in TOP_LEVEL},
    package_data={f"{NAMESPACE}.schema": ["schema.pbtxt"],
                  f"{NAMESPACE}.components.generator": ["photos/*.jpg", "photos/README.md"]},
    install_requires=[
        "tfx[kfp]==1.16.0",
        "tensorflow==2.16.2",
        "tensorflow-transform==1.16.0",
        "tensorflow-serving-api==2.16.1",
        "apache-beam[gcp]",
        "dill",            # tfx-bsl imports it; Beam >= 2.66 no longer brings it
        "h5py",            # SVHN format 1 (digitStruct.mat is MATLAB v7.3 / HDF5)
        "scipy",
        "pillow",
        "matplotlib",      # plots, and the DejaVu fonts the data generator draws digits with
        "build",           # Beam packages this project for its workers (--setup_file) with it
        "fontpkg",         # Google Fonts families from PyPI, for the data generator
    ] + [f"fontpkg-{family}" for family in _font_families()],
    # PyPI's `schema` library is installed for the tests: svhn_tfx.schema must live beside it;
    # prometheus-client's parser reads the server's metrics in the tests
    extras_require={"dev": ["pytest", "pytest-timeout", "hypothesis", "schema",
                            "prometheus-client"]},
    entry_points={
        "console_scripts": [
            "svhn-tfx-data=svhn_tfx.components.converters.cli:main",
            "svhn-tfx-serve=svhn_tfx.serving.server:main",
            "svhn-tfx-predict=svhn_tfx.serving.client:main",
            "svhn-tfx-demo=svhn_tfx.pipeline.demo:main",
        ],
    },
)
