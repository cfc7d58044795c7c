# The kakin image: the worker (`python worker.py`), the migrations
# (`alembic upgrade head`) and the command line (`python starter.py`, `kakin`).
# Built by docker-compose.yml; configuration comes from KAKIN_* environment variables,
# never from files baked into the image (.dockerignore keeps .env out).
FROM python:3.11-slim

# PYTHONPATH: import our packages from /app, next to templates/ and migrations/, which
# the code finds relative to its own files (not from the copy pip puts in site-packages).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app

WORKDIR /app

RUN groupadd --system kakin && useradd --system --gid kakin --home-dir /app kakin

# Packaging first, then the code: `pip install .` builds the packages and installs
# every dependency (temporalio, SQLAlchemy, psycopg, alembic, stripe, sendgrid, ...),
# and the tracing extra, so that setting KAKIN_OTLP_ENDPOINT is all tracing needs.
COPY pyproject.toml README.md ./
COPY billing/ billing/
COPY kakin/ kakin/
COPY models/ models/
COPY activities/ activities/
COPY workflows/ workflows/
COPY api/ api/
COPY worker.py starter.py ./
RUN pip install ".[tracing]"

COPY templates/ templates/
COPY migrations/ migrations/
COPY alembic.ini ./

# var/outbox holds .eml files when KAKIN_EMAIL_BACKEND=outbox (a volume in compose).
RUN mkdir -p var/outbox && chown -R kakin:kakin var

USER kakin

CMD ["python", "worker.py"]
