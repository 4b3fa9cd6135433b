"""Knowledge bases: documents turned into searchable passages (extraction, chunking, indexing, retrieval)."""
