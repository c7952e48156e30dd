"""tilefarm: a Blender render farm as Pachyderm pipelines.

This folder is the shared library, by concept: ``plan`` (what a job renders), ``runtime``
(what a stage runs on), ``blender`` (Blender in a child process), ``engine`` (the local
engine) and ``cli`` (the command line). The card's folders mount beside them under the
same import root: ``tilefarm.pipelines`` (the Pachyderm side), ``tilefarm.splitter``,
``tilefarm.renderer``, ``tilefarm.merger``, ``tilefarm.encoder`` and ``tilefarm.specs``.
Nothing imports ``bpy`` except ``tilefarm.blender.side``, which runs only inside Blender.
"""

__version__ = "0.1.0"
