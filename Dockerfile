# syntax=docker/dockerfile:1
FROM python:3.11-slim AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY app ./app
RUN /opt/venv/bin/pip install .

FROM python:3.11-slim
# PYTHONPATH puts /app/app (beside alembic.ini and migrations/) ahead of the installed copy.
ENV PATH=/opt/venv/bin:$PATH PYTHONPATH=/app PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    CRM_HOST=0.0.0.0 CRM_PORT=8000 CRM_DATABASE_URL=sqlite:////data/crm.db
RUN useradd --system --uid 10001 --home /app crm && mkdir -p /data && chown crm /data
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY alembic.ini ./
COPY migrations ./migrations
COPY app ./app
USER crm
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status == 200 else 1)"
# Migrate, then serve.
CMD ["sh", "-c", "crm migrate && exec crm serve --workers ${CRM_WORKERS:-2}"]
