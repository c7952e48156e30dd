"""The ``tilefarm`` command line: plan, render, the local engine in pachctl's grammar, and
the cluster commands. It drives the stages and the engine; nothing imports it."""
