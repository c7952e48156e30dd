"""Ray nodes: the farm across many machines (``tilefarm join``, ``serve``/``render --ray``).

``node`` runs on each node (its file cache and the worker actor); ``pool`` runs on the head
(the slots over every node); ``routing`` says which nodes can run a datum.
"""
