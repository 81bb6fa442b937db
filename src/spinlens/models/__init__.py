"""Torch models: the simplified linear attention of the paper and (in `zoo`) real attention architectures."""
