"""Layer 1: pure inspection. Images in, scores, maps and regions out. No web, no database."""
