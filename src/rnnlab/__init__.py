"""rnnlab: a reproducible pipeline for the recurrent-network experiments of a course."""

__version__ = "0.1.0"
