"""svhn-tfx: a TFX pipeline that trains, calibrates and serves an SVHN digit reader.

Install with the pinned stack: ``pip install -c constraints.txt -e .[dev]`` (the Makefile
does this). Python 3.10 and TFX 1.16 are the newest that install on glibc 2.36.
"""
import ast
import os

from setuptools import find_packages, setup


def _font_families():
    """The generator's font families (components/data/fonts.py), read without importing it."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "components", "data",
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
    packages=find_packages(include=["pipeline*", "components*", "schema*", "serving*"]),
    package_data={"schema": ["schema.pbtxt"]},
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
    extras_require={"dev": ["pytest", "pytest-timeout", "hypothesis"]},
    entry_points={
        "console_scripts": [
            "svhn-tfx-data=components.data.cli:main",
            "svhn-tfx-serve=serving.server:main",
            "svhn-tfx-predict=serving.client:main",
            "svhn-tfx-demo=pipeline.demo:main",
        ],
    },
)
