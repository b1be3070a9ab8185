"""Inference backends: what runs a prepared batch tensor through the model.

:class:`~edge.backends.base.InferenceBackend` is the one interface :class:`edge.detector.Detector` talks to;
:mod:`edge.backends.onnxruntime` implements it on ONNX Runtime (CPU, CUDA, TensorRT).
"""
