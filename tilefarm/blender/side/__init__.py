"""Modules that run only inside Blender (they import ``bpy``).

The parent process never imports them: ``tilefarm.blender.runner`` runs ``main.py``
as a script in a child process, and these modules import each other by their
bare names from this directory.
"""
