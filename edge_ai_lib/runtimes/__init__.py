"""runtimes of edge_ai_lib."""
