"""Compositor File Output nodes write where the farm says, never where the file says.

A File Output node fires in whichever Blender runs the compositor and writes to its own
base path, absolute or ``//``-relative. Each node is pointed at ``<dir>/<node name>/``
(a multilayer node keeps its file-name prefix, the part of its base path after the last
``/``), so its files keep the names Blender gives them (slot path, frame number,
extension) and nothing is written outside the datum's output.
"""

import os

import compat


def file_output_nodes(tree, seen=None):
    """The unmuted File Output nodes of a compositor tree, inside its node groups too (a
    node in a group writes as well, and must not write where the file says)."""
    if tree is None:
        return []
    seen = set() if seen is None else seen
    if tree.name in seen:  # a group used twice is redirected once
        return []
    seen.add(tree.name)
    found = []
    for node in tree.nodes:
        if node.mute:
            continue
        if node.type == "OUTPUT_FILE":
            found.append(node)
        elif node.type == "GROUP":
            found += file_output_nodes(node.node_tree, seen)
    return found


def redirect(tree, directory):
    """Point every File Output node of ``tree`` under ``directory``; return how many."""
    nodes = file_output_nodes(tree)
    for node in nodes:
        safe = node.name.replace("/", "_").replace(os.sep, "_")
        compat.set_file_output_directory(node, os.path.join(directory, safe, ""))
    return len(nodes)
