"""The real-time core: the hop loop and its policies (device supervision, the adaptive jitter buffer and
drift resampling, model skips and overload), and the 16 kHz hop itself (Python and C)."""
