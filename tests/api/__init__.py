"""HTTP tests of the sign-in routes on a real loopback server."""
