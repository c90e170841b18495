"""stepwise."""
