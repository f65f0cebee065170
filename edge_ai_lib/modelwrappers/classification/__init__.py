"""classification of edge_ai_lib."""
