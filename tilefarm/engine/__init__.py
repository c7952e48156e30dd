"""The local engine: Pachyderm's model (versioned repos, pipelines, jobs, datums) on one machine.

It runs the same ``specs/`` a cluster runs, with Pachyderm 2.x datum semantics,
so what a user learns here works unchanged against pachd.
"""
