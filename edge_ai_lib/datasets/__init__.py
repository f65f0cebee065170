"""datasets of edge_ai_lib."""
