# The `sitroom` CLI as one image: `sitroom cloud ingest`, `sitroom cloud rules` and
# `sitroom gateway run` are the same package started with different arguments
# (see docker-compose.yml).

# --- build: wheels for the package and its dependencies ----------------------------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# .dockerignore lets in only what `pip install .` needs (pyproject.toml, README.md and the three
# packages), so tests, the venv and local data never reach the image.
COPY . .
RUN pip wheel --wheel-dir /wheels .

# --- runtime -----------------------------------------------------------------------------------
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels sitroom
# An unprivileged user; its home is the working directory, where a gateway keeps its spool
# (docker-compose.yml mounts a volume there).
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/sitroom sitroom
USER sitroom
WORKDIR /var/lib/sitroom
ENTRYPOINT ["sitroom"]
CMD ["--help"]
