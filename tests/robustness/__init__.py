"""Robustness tests: real worker processes killed, paused, stopped and fed bad input."""
