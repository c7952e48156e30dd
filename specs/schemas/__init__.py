"""JSON Schemas of tilefarm's manifests: job settings, plan, task, tile metadata."""
