"""compilers of edge_ai_lib."""
