"""Installs T5-CR: an end-to-end conversational movie recommender in JAX."""

import setuptools

setuptools.setup(
    name="t5-crs",
    version="0.1.0",
    description=(
        "T5-CR (Ram et al. 2023): one T5 that talks and recommends, "
        "with seqio tasks, a t5x-style JAX trainer and ReDial evaluation."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=[
        "crs_runtime*", "crs_tasks*", "train*", "eval*", "crs_chat*"]),
    package_data={
        "crs_tasks": [
            "data/*",
            "sample_data/*",
            "sample_data/*/*",
            "tfds_builders/*.tsv",
        ],
    },
    include_package_data=True,
    install_requires=[
        "absl-py>=1.0",
        "numpy>=1.24,<3",
        "ml-dtypes>=0.2",  # bfloat16 in numpy (train/hf_import.py)
        "jax>=0.4.30,<0.13",
        "flax>=0.8,<0.13",
        "optax>=0.2,<0.3",
        "orbax-checkpoint>=0.5,<0.13",
        "seqio>=0.0.18,<0.1",
        "tensorflow>=2.15,<2.22",
        "tensorflow-datasets>=4.9,<5",
        "gin-config>=0.5,<0.6",
        # 0.2.2+ ships protobuf-7 generated code that TF 2.21 (protobuf 6) rejects.
        "sentencepiece>=0.1.99,<0.2.2",
        "sacrebleu>=2.3,<3",
        "matplotlib>=3.7,<4",
        "tensorboard>=2.15,<3",
        "tqdm>=4.60",
        # Hugging Face checkpoints (train/hf_import.py) and the committed
        # parity goldens, read with numpy: no torch.
        "safetensors>=0.4",
    ],
    extras_require={
        "test": [
            "pytest>=7",
            "pytest-xdist>=3",
            "nltk>=3.8",
            # The Beam-caching test runs seqio's cache_tasks_main on DirectRunner.
            "apache-beam>=2.50",
            "crcmod>=1.7",
        ],
        # The live Hugging Face comparison (tests/train/hf_parity_test.py
        # against transformers itself), scripts/make_hf_goldens.py and the
        # PyTorch side of bench/train_throughput.py. Kept out of `test`:
        # torch brings triton and, on Linux, the CUDA wheels (5 GB); the
        # default suite checks parity against committed goldens instead.
        "parity": [
            "torch>=2.1",
            "transformers>=4.40,<6",
            "safetensors>=0.4",
        ],
        # crcmod: Beam's WriteToTFRecord needs a CRC library (seqio caching).
        "beam": ["apache-beam>=2.50", "crcmod>=1.7"],
    },
    entry_points={},
)
