"""Layer 2: running a trained model fast (torch path, ONNX Runtime path, batching)."""
