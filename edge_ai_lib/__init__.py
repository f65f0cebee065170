"""edge_ai_lib: test the deployment of deep-learning models on edge devices."""

__version__ = "0.1.0"
