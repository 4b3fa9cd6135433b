"""HTTP routes beside the Reflex app (health now; REST API, OAuth callbacks later)."""
