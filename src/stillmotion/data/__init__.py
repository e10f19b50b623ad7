"""Samples and manifests, datasets over cached tokens, and the synthetic task suite."""

from stillmotion.data.manifest import Sample, class_names, read_manifest, write_manifest

__all__ = ["Sample", "class_names", "read_manifest", "write_manifest"]
