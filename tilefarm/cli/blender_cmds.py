"""``tilefarm blender list`` and ``tilefarm blender install X.Y``: the Blender runtimes here."""

from __future__ import annotations

import argparse

from tilefarm.blender import runtime_install, runtimes


def cmd_list(args: argparse.Namespace) -> int:
    found = runtimes.installed()
    if not found:
        print("tilefarm: no Blender runtime is installed; install one with: "
              "tilefarm blender install 4.5")
        return 0
    rows = [("SERIES", "VERSION", "RUNS WITH", "WHERE")]
    rows += [(r.series, r.version, r.python or r.executable or "", r.where) for r in found]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    if args.executable:
        runtime = runtime_install.register_executable(args.version, args.executable)
        print(f"tilefarm: registered Blender {runtime.version} ({runtime.executable})")
        return 0
    runtime_install.install(args.version, python=args.python)
    return 0


def _blender_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("blender", help="list or install Blender runtimes",
                       description="Each job renders with the Blender that saved its file. "
                                   "These commands show and make the Blender runtimes tilefarm "
                                   f"can use (installed under {runtimes.runtimes_root()}, or "
                                   "$TILEFARM_RUNTIMES).")
    verbs = p.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True
    ls = verbs.add_parser("list", help="show the installed runtimes")
    ls.set_defaults(handler=cmd_list)
    inst = verbs.add_parser("install", help="install bpy X.Y from PyPI in a venv of its own",
                            description="Create the runtime of Blender VERSION (major.minor) "
                                        "from PyPI with pip: 4.2-5.0 need Python 3.11, 5.1 and "
                                        "later Python 3.13, found on PATH or in pyenv, asdf or "
                                        "uv unless --python names one.")
    inst.add_argument("version", metavar="VERSION", help="major.minor, e.g. 5.0")
    inst.add_argument("--python", metavar="PATH", help="the interpreter to make the venv with")
    inst.add_argument("--executable", metavar="PATH",
                      help="register this Blender executable instead of installing bpy")
    inst.set_defaults(handler=cmd_install)


BLENDER_COMMANDS = [_blender_parser]
