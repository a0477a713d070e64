"""StreamPipeline: a Kubernetes operator and local runner for real-time ELT pipelines."""

__version__ = "0.1.0"
