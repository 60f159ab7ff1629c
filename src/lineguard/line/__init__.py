"""Layer 3: the production side (storage, sources, sinks, SPC, registry)."""
