"""Package list for setuptools (everything else is in pyproject.toml): the library's packages, plus the shipped
zoo (the repository's ``weights/`` folder) installed as the package data ``vision/weights``, so ``pip install``
carries the models and ``vision.zoo.shipped_zoo_dir()`` finds them there."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["vision", "vision.*"]), "vision.weights"],
      package_dir={"vision.weights": "weights"})
