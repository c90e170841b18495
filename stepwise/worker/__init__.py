"""Workers: claim runs, execute them with the replay engine, hold their leases, shut down
gracefully. Uses ``core`` and ``backends``; never imports the operator."""
