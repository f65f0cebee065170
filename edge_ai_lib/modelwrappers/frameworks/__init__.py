"""frameworks of edge_ai_lib."""
