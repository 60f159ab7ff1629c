"""Layer 4: the FastAPI station service."""
