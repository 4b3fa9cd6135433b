"""The version of rubin-client."""

__version__ = "0.1.0"
