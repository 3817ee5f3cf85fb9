"""rtenhance: real-time speech enhancement with GTCRN."""

__version__ = "0.1.0"
