"""tilefarm's shared library: planning, manifests, the Blender runner and the CLI.

Nothing in this package imports ``bpy`` except ``pipelines.blender_side``,
whose modules run only inside a Blender child process.
"""

__version__ = "0.1.0"
