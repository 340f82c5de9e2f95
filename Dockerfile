# syntax=docker/dockerfile:1
# Image of the `journeys` CLI: `docker run IMAGE` runs the Temporal worker,
# `docker run IMAGE api` the HTTP gateway (with API_HOST=0.0.0.0 to reach it
# from outside the container), `docker run IMAGE migrate` (or any other
# subcommand) that command.

# Builder and runtime must use the same Python: the venv's interpreter is a
# symlink to the base image's /usr/local/bin/python3.11.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ghcr.io/astral-sh/uv:0.9.30 AS uv

# ---------------------------------------------------------------- builder --
FROM ${PYTHON_IMAGE} AS builder
COPY --from=uv /uv /uvx /bin/
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app

# Dependencies first: this layer is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

# Then the project itself (README.md is needed: pyproject's `readme`).
COPY README.md alembic.ini worker.py scoring.toml scoring.seed-002.toml sales.toml churn.toml \
    onboarding.toml deals.toml ./
COPY workflows/ workflows/
COPY activities/ activities/
COPY models/ models/
COPY starter/ starter/
COPY runtime/ runtime/
COPY rules/ rules/
COPY migrations/ migrations/
COPY templates/ templates/
# Editable install on purpose: models/settings.py finds templates/ and
# migrations/ relative to the source tree (PROJECT_ROOT = /app).
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev
# The project's bytecode too (UV_COMPILE_BYTECODE covers site-packages only):
# the workflow sandbox imports a journey's file for every new run, and with
# PYTHONDONTWRITEBYTECODE nothing would cache its compiled form at run time.
RUN /app/.venv/bin/python -m compileall -q workflows activities models runtime rules starter worker.py

# ---------------------------------------------------------------- runtime --
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 journeys \
 && useradd --system --uid 10001 --gid journeys --home-dir /app --no-create-home journeys
# Code and venv stay root-owned (read-only for the app user). Only .data/ is
# writable: the default SQLite file and the outbox live there, and a named
# volume mounted on /app/.data/outbox inherits this ownership when created.
COPY --from=builder /app /app
RUN mkdir -p /app/.data/outbox && chown -R journeys:journeys /app/.data
ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
# The HTTP gateway's port (API_PORT), when the container runs `journeys api`.
EXPOSE 8000
# Numeric so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
ENTRYPOINT ["journeys"]
CMD ["worker"]
