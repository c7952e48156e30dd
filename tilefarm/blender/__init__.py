"""Blender in a child process: the runner and its warm sessions, the typed requests the
child accepts, reading .blend headers without Blender, and (``side/``) the scripts Blender runs."""
