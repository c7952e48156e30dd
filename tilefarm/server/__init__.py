"""``tilefarm serve``: a long-running engine with a JSON API, a live dashboard and job control.

``farm`` runs the engine and the live view, ``api`` the HTTP side, ``state`` reads what the
page shows from the store, ``intake`` takes uploaded jobs as ``render`` does, ``previews``
makes thumbnails, ``client`` is what the CLI uses to reach a server.
"""
