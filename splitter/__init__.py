"""The splitter stage: one datum per job in ``blends``; writes the plan and task manifests."""
