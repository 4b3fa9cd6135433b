"""Knowledge bases: uploaded documents, their chunks and the hybrid retrieval over them (issue #15)."""
