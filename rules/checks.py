"""Built-in checks of the rule pack (being written)."""
CHECKS = {}
