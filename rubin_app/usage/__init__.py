"""Usage accounting: one append-only row per answer, from the UI and the API."""
