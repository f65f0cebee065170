"""boards of edge_ai_lib."""
