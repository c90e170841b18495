"""Start, inspect, wait for and cancel runs. Uses ``core`` for definitions and ``backends``."""
