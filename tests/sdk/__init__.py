"""The Python SDK (sdk/python) against a running Rubin."""
