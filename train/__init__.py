"""train: a compact t5x-style network, model wrapper and trainer.

Importing the package loads nothing: `import train.network` needs only JAX
and Flax. The entry points (`train.main`, `train.infer`) start their log
capture themselves (`crs_runtime.cli.capture_early`).
"""
