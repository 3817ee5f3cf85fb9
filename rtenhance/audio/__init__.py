"""Audio I/O and the real-time engine: rings, devices, streams, the worker and its policies."""
