"""Generation: a run streams a ChatRequest's answer; sinks (the answer's row, the cache, accounting) subscribe."""
