"""The engine's pure logic: workflow definitions, the step API, memo keys and replay.

Membership: code that decides *what* happens to a run. It reaches storage only through
``stepwise.backends.base.Backend`` and never imports kopf, kubernetes or a database driver.
"""
