"""onnxconverters of edge_ai_lib."""
