"""Pachyderm pipeline specs (``*.json``) and manifest JSON Schemas (``schemas/``).

A package only so that the files travel inside the wheel; nothing here runs.
"""
