"""modelwrappers of edge_ai_lib."""
