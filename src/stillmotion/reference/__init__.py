"""The papers' own models: their reference code's architectures, parameter names and
checkpoints, mapped onto stillmotion's modules."""
