"""The one thing pyproject.toml cannot say: which folders make up the ``tilefarm`` import root.

The shared library is ``tilefarm/``; the card's folders (``pipelines/``, the four stages,
``specs/``) keep their places in the checkout and install as ``tilefarm.<folder>``.
Every package under each folder is found, so a new subpackage cannot be left out of the
wheel (setuptools' own discovery does not look inside remapped folders).
"""

from setuptools import find_packages, setup

ROOTS = {
    "tilefarm": "tilefarm",
    "tilefarm.pipelines": "pipelines",
    "tilefarm.splitter": "splitter",
    "tilefarm.renderer": "renderer",
    "tilefarm.merger": "merger",
    "tilefarm.encoder": "encoder",
    "tilefarm.specs": "specs",
}

setup(
    package_dir=ROOTS,
    packages=[f"{name}.{sub}" if sub else name
              for name, folder in ROOTS.items() for sub in ["", *find_packages(folder)]],
)
