"""The Pachyderm side (``tilefarm.pipelines``): reading specs as pachd reads them, the
worker's datum protocol (NextDatum, both ends), the python-pachyderm cluster client,
deploying the pipelines and building their image. The local engine uses the specs and the
worker protocol; only the cluster commands use the client."""
