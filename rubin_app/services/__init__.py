"""Plain async Python that does Rubin's I/O: no Reflex here."""
