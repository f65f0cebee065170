"""scenarios of edge_ai_lib."""
