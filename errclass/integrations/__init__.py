"""Framework integrations, one module per stack; each imports its framework only when used."""
