"""Live audio: ``io`` (devices, streams, rings) apart from ``realtime`` (the worker's hop loop and policies)."""
