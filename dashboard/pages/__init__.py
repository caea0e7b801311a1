"""The dashboard's pages: their views, the context they render, and what the Diagnose page runs."""
