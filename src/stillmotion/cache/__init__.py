"""The token store: frozen-encoder tokens written once per video, read many times."""

from stillmotion.cache.store import CacheMismatchError, TokenStore

__all__ = ["CacheMismatchError", "TokenStore"]
