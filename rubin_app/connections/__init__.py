"""Model connections: several OpenAI-compatible servers (LocalAI, cloud providers) behind one model list."""
