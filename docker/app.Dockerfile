# syntax=docker/dockerfile:1
# One image for our Python 3.11 processes. docker-compose.yml picks the command:
#   actions   python -m actions        (rasa-sdk action server, :5055)
#   gateway   python -m connectors     (public channels + /health, :8000)
#   admin     python -m admin_api serve (admin API, owner page, Rasa's NLG endpoint, :8080)
#   migrate   alembic upgrade head     (our schema, one-shot)
# Every product package is copied; the development tools (devtools/: demo shop, provider
# sandbox), tests/ and bench/ are not. tests/test_compose.py checks both.
FROM python:3.11-slim

# PYTHONPATH=/app: the processes import our top-level packages (core, tenants, ...) and
# Alembic's env.py imports them too, exactly as `.venv/bin/python -m ...` does from the repo root.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    PATH=/opt/venv/bin:$PATH

WORKDIR /app

# Dependencies first so code edits do not reinstall them. Only the pinned lock file, nothing
# resolved at build time. torch (for knowledge/ embeddings) must be the CPU build: PyTorch's
# CPU index offers 2.13.0+cpu, which pip prefers to PyPI's CUDA-bundled 2.13.0 (GBs more).
COPY requirements/app.lock requirements/app.lock
RUN python -m venv /opt/venv \
 && pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements/app.lock \
 && pip check \
 && python -c "import sys, torch; sys.exit('torch must be the CPU build' if torch.version.cuda else 0)"

# Code is owned by root and read-only for the process user. `python -m tenants` and
# `python -m knowledge` (adding shops and their documents) and `python -m admin_api` (shops,
# people, keys) run in this image too.
COPY alembic.ini ./
COPY core/ core/
COPY tenants/ tenants/
COPY actions/ actions/
COPY knowledge/ knowledge/
COPY connectors/ connectors/
COPY admin_api/ admin_api/
COPY billing/ billing/
COPY migrations/ migrations/
# The domain's responses: the defaults the admin API lists and its NLG endpoint renders, and
# the gateway's own texts (tenants/texts.py reads them as YAML; no Rasa in this image).
COPY bot/domain/ bot/domain/
# The base training data every shop shares: designers' drafts are checked against it and can
# read it (admin_api/training/base.py reads data/ and bot/domain/ as YAML).
COPY data/ data/

# SWITCHBOARD_VAR_DIR defaults to /app/var (core/settings.py): the knowledge volume is mounted
# at var/knowledge, so it must exist and be writable even when DATABASE_URL points at
# PostgreSQL.
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app app \
 && mkdir -p /app/var/knowledge \
 && chown -R app:app /app/var

USER 10001:10001

EXPOSE 5055 8000 8080
# No default command on purpose: the same image runs four different processes.
