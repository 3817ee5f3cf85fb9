"""Fast backend: the ``GTCRN.step`` graph of ``onnx_graph`` in onnxruntime, state kept in ORT buffers.

The graph is built in memory from the loaded model's weights (about 0.1 s), so any checkpoint that
``load_model`` loads runs here with no export step and nothing cached on disk. The session runs on the
calling thread only (one intra-op thread, sequential execution, no spinning). Inputs, outputs and the two
sets of state buffers are preallocated and bound once; each hop copies the frame in, runs, and swaps
which state set is read and which is written.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import torch

from rtenhance.backends.onnx_graph import SPEC_INPUT, SPEC_OUTPUT, build_step_graph, state_output_name
from rtenhance.model.gtcrn import GTCRN
from rtenhance.model.state import StreamState

ORT_LOG_ERRORS_ONLY = 3  # onnxruntime severity: 0 verbose .. 3 error


def session_options(threads: int = 1) -> ort.SessionOptions:
    """onnxruntime options for one small stream: ``threads`` intra-op threads, nothing parallel or spinning."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Extended: fuses each activation into its convolution; "all" would add NCHWc layout conversions,
    # which cost more than they save on tensors this small.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.log_severity_level = ORT_LOG_ERRORS_ONLY
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


class OnnxStepper:
    """One stream of ``model.step`` in onnxruntime (see the module docstring).

    Args:
        model: the network; its weights are copied into the graph (later changes to it are not seen).
        threads: intra-op threads (1 for a real-time stream).
    """

    def __init__(self, model: GTCRN, threads: int = 1) -> None:
        model = model.eval()
        n_bins = model.config.stft.n_bins
        self.session = ort.InferenceSession(
            build_step_graph(model).SerializeToString(), session_options(threads), providers=["CPUExecutionProvider"]
        )
        self._spec = np.zeros((n_bins, 2), dtype=np.float32)
        self._out = np.zeros((n_bins, 2), dtype=np.float32)
        zero_state = {name: t.numpy() for name, t in model.init_state(1).named_tensors().items()}
        self._states = [{name: np.zeros_like(t) for name, t in zero_state.items()} for _ in range(2)]
        self._bindings = [self._bind(reads=i, writes=1 - i) for i in range(2)]
        self._turn = 0

    def _bind(self, reads: int, writes: int) -> ort.IOBinding:
        """A binding that reads state set ``reads`` and writes state set ``writes`` (no copies: the ORT
        values wrap the NumPy buffers)."""
        binding = self.session.io_binding()
        binding.bind_ortvalue_input(SPEC_INPUT, ort.OrtValue.ortvalue_from_numpy(self._spec))
        binding.bind_ortvalue_output(SPEC_OUTPUT, ort.OrtValue.ortvalue_from_numpy(self._out))
        for name in self._states[reads]:
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(self._states[reads][name]))
            binding.bind_ortvalue_output(
                state_output_name(name), ort.OrtValue.ortvalue_from_numpy(self._states[writes][name])
            )
        return binding

    def reset(self) -> None:
        """Back to the zero state."""
        for state in self._states:
            for buffer in state.values():
                buffer.fill(0.0)
        self._turn = 0

    def step(self, frame: np.ndarray) -> np.ndarray:
        """(F, 2) float32 noisy frame -> (F, 2) float32 enhanced frame (an internal buffer, valid until the
        next call)."""
        np.copyto(self._spec, frame)
        self.session.run_with_iobinding(self._bindings[self._turn])
        self._turn ^= 1
        return self._out

    def stream_state(self) -> StreamState:
        """A copy of the current state, as ``GTCRN.step`` would hold it."""
        current = self._states[self._turn]
        return StreamState.from_named_tensors({name: torch.from_numpy(b.copy()) for name, b in current.items()})
