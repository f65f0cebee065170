"""runtimeprotocols of edge_ai_lib."""
