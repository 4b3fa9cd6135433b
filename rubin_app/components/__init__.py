"""UI functions: they read state vars and never touch the database or the network."""
