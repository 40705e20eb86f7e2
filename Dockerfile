# Three images from one locked environment (uv.lock), one target each (see DOCKER.md):
#   docker build --target api        -t app-api .         # uvicorn; no Prefect inside
#   docker build --target worker     -t app-worker .      # every flow on its schedule (+ Prefect)
#   docker build --target migrations -t app-migrations .  # alembic upgrade head, then exits
# Layer order gives the cache: the dependencies are installed from pyproject.toml + uv.lock alone,
# so a code change rebuilds only the small layers after them.

# --- shared by every stage: the interpreter and its settings -------------------------------------
FROM python:3.13-slim AS base
LABEL org.opencontainers.image.title="app" \
      org.opencontainers.image.description="Domain-first backend template: Litestar + SQLModel + advanced-alchemy + Prefect" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.13-slim"
ENV PYTHONUNBUFFERED=1 \
    PATH="/srv/.venv/bin:$PATH"
WORKDIR /srv

# --- the build stages: uv, and the virtualenv of each dependency set ----------------------------
FROM base AS uv
# The uv the lock file was made with: same resolution, same `--locked` check, no download at build.
RUN pip install --no-cache-dir uv==0.13.9
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/srv/.venv

FROM uv AS venv-api
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --no-dev --no-install-project
# The project itself, editable: its code is copied into each final image at /srv/app, so this
# virtualenv (and the layer copying it) stays the same when only the code changes.
COPY README.md ./
COPY app/__init__.py app/__init__.py
RUN uv sync --locked --no-dev

# --- what the final images share: an unprivileged user ------------------------------------------
FROM base AS runtime
# A home directory, because Prefect keeps its profile and local storage under ~/.prefect.
RUN useradd --create-home --uid 10001 --user-group app

# --- api: uvicorn on port 8000 --------------------------------------------------------------------
FROM runtime AS api
LABEL org.opencontainers.image.title="app-api"
COPY --from=venv-api /srv/.venv /srv/.venv
COPY app ./app
RUN python -m compileall -q app
USER 10001:10001
EXPOSE 8000
# Liveness, not readiness: an unhealthy mark must not have every API container restarted during a
# database outage (`/health/ready` answers 503 then, and the load balancer should use that one).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/', timeout=2)"]
# Exec form: uvicorn is PID 1 and gets SIGTERM itself: it stops accepting, finishes in-flight requests
# (for at most 8 s, inside `docker stop`'s 10) and runs the app's shutdown, which closes the pool.
# Its own limits (DOCKER.md, "Limits"): httptools with a deadline and size caps on request headers
# (app/api/server.py), at most 512 connections (then 503), idle kept-alive connections closed after 5 s.
# X-Forwarded-For is believed from FORWARDED_ALLOW_IPS only (default: loopback).
CMD ["uvicorn", "--factory", "app.api.main:create_app", "--host", "0.0.0.0", "--port", "8000", \
     "--http", "app.api.server:BoundedHttpToolsProtocol", "--limit-concurrency", "512", \
     "--timeout-keep-alive", "5", "--no-access-log", "--timeout-graceful-shutdown", "8"]

# --- migrations: one shot, against DATABASE_URL ---------------------------------------------------
FROM runtime AS migrations
LABEL org.opencontainers.image.title="app-migrations"
COPY --from=venv-api /srv/.venv /srv/.venv
COPY app ./app
COPY migrations ./migrations
COPY alembic.ini ./
RUN python -m compileall -q app migrations
USER 10001:10001
CMD ["alembic", "upgrade", "head"]

# --- worker: Prefect's runner serving every flow (PREFECT_API_URL names the server) ---------------
FROM uv AS venv-worker
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --no-dev --group worker --no-install-project
COPY README.md ./
COPY app/__init__.py app/__init__.py
RUN uv sync --locked --no-dev --group worker

FROM runtime AS worker
LABEL org.opencontainers.image.title="app-worker"
COPY --from=venv-worker /srv/.venv /srv/.venv
COPY app ./app
RUN python -m compileall -q app
USER 10001:10001
# The runner's own web server answers /health on the loopback: unhealthy once it stops polling.
ENV PREFECT_RUNNER_SERVER_ENABLE=true \
    PREFECT_RUNNER_SERVER_HOST=127.0.0.1 \
    PREFECT_RUNNER_SERVER_PORT=8080 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"]
# Exec form: the runner gets SIGTERM itself and stops polling; schedules stay on (pause_on_shutdown=False).
CMD ["python", "-m", "app.workers.main", "serve"]
