"""Admin pages and their state."""
