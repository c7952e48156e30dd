# One image for all four stages: Python, tilefarm and its dependencies (its bpy included),
# and any extra Blender runtimes of the same Python.
#
# The build needs no network: the context holds a wheelhouse of every dependency
# (wheelhouse/, with requirements.txt) and tilefarm's own wheel (dist/), both made
# by `tilefarm deploy --build` (pipelines/image.py) - the same path serves render
# nodes that are air-gapped.
ARG BASE_IMAGE=python:3.11-slim
# Extra Blender runtimes (series such as "5.0"; `tilefarm deploy --blender`), each a venv of
# the base's Python holding the bpy wheels in wheelhouse/runtimes/<series>/.
ARG RUNTIMES=""

# Dependencies in a venv, built in a stage of their own so the final image gets them
# as one layer and keeps no wheelhouse. Their bytecode is compiled here, checked by hash
# rather than by source mtime (unchecked: the sources never change in the image): the
# stages run as a user who cannot write /opt/tilefarm, and without it every Blender child
# would compile bpy's startup scripts afresh (about 2.5 s a start). The extra runtimes are
# installed in the same step, listed as tilefarm lists them (runtime.json, written last).
#
# Few layers: with the storage drivers that copy a whole layer (vfs, which the CI's daemon
# falls back to where the kernel has no overlay), each instruction after the dependencies
# cost a copy of them (about 25 s each, 6 minutes a build); the final image takes them in
# one COPY, its last instruction.
FROM ${BASE_IMAGE} AS deps
ARG RUNTIMES
COPY wheelhouse/ /wheelhouse/
RUN python3 -m venv /opt/tilefarm \
 && /opt/tilefarm/bin/pip install --no-cache-dir --no-compile --no-index \
        --find-links /wheelhouse -r /wheelhouse/requirements.txt \
 && /opt/tilefarm/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash \
        /opt/tilefarm/lib \
 && mkdir -p /opt/tilefarm-runtimes && for series in $RUNTIMES; do \
        dir=/opt/tilefarm-runtimes/$series \
     && python3 -m venv $dir/venv \
     && $dir/venv/bin/pip install --no-cache-dir --no-compile --no-index \
            --find-links /wheelhouse/runtimes/$series "bpy==$series.*" \
     && $dir/venv/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash $dir/venv/lib \
     && version=$($dir/venv/bin/python -c "import importlib.metadata as m; print(m.version('bpy'))") \
     && printf '{"series": "%s", "version": "%s", "python": "%s"}\n' \
            "$series" "$version" "$dir/venv/bin/python" > $dir/runtime.json \
     || exit 1; \
    done
# tilefarm itself after its dependencies: a code change rebuilds from here on only.
COPY dist/ /tmp/dist/
RUN /opt/tilefarm/bin/pip install --no-cache-dir --no-index --no-deps /tmp/dist/*.whl \
 && rm -rf /tmp/dist

FROM ${BASE_IMAGE}
ENV PATH=/opt/tilefarm/bin:$PATH \
    TILEFARM_RUNTIMES=/opt/tilefarm-runtimes \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# bpy links against these X11/GL client libraries (no display is ever opened). A base
# image that already has them (the CI's Debian root filesystem) skips the install.
# The stages run as an unprivileged user, uid and gid 1000 (numeric in USER, so Kubernetes'
# runAsNonRoot can check it): a .blend is untrusted input, and Blender parsing it as root
# would own the container. Code and dependencies stay root's, read-only to it. A base image
# that already has uid 1000 (ubuntu's "ubuntu") keeps that user. /pfs/out is its own for a
# plain `docker run`; Pachyderm mounts /pfs over it.
RUN if ! ldconfig -p | grep -q 'libSM.so.6' || ! ldconfig -p | grep -q 'libXi.so.6' \
        || ! ldconfig -p | grep -q 'libOpenGL.so.0'; then \
        apt-get update && apt-get install -y --no-install-recommends \
            libx11-6 libxrender1 libxfixes3 libxi6 libxkbcommon0 libxcb1 libxext6 \
            libsm6 libice6 libxt6 libgl1 libglx0 libopengl0 \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
 && if ! getent passwd 1000 >/dev/null; then \
        (getent group 1000 >/dev/null || groupadd --gid 1000 tilefarm) \
        && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/tilefarm \
            --shell /usr/sbin/nologin tilefarm; \
    fi \
 && mkdir -p /pfs/out && chown 1000:1000 /pfs/out
WORKDIR /pfs
CMD ["python3", "-m", "tilefarm.splitter", "--help"]
USER 1000:1000
# Everything tilefarm runs, root's (COPY makes it so), in one layer.
COPY --from=deps /opt/ /opt/
