"""Device I/O: where samples enter and leave (PortAudio, PulseAudio/PipeWire streams, files), the rings
between them and the worker, device names, presence watch and the virtual microphone."""
