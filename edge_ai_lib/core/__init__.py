"""Interfaces of edge_ai_lib. Nothing here imports a deep-learning framework."""
