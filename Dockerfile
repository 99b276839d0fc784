# syntax=docker/dockerfile:1
FROM python:3.11-slim AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY app ./app
# A wheel, installed: the migrations travel inside the package (app/migrations).
RUN /opt/venv/bin/pip wheel --no-deps -w /wheels . \
 && /opt/venv/bin/pip install /wheels/*.whl

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    CRM_HOST=0.0.0.0 CRM_PORT=8000 CRM_DATABASE_URL=sqlite:////data/crm.db
RUN useradd --system --uid 10001 --home /data crm && mkdir -p /data && chown crm /data
WORKDIR /data
COPY --from=build /opt/venv /opt/venv
USER crm
EXPOSE 8000
# The check follows CRM_PORT, whatever it is set to at run time.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import os,sys,urllib.request; port=os.environ.get('CRM_PORT','8000'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/readyz', timeout=2).status == 200 else 1)"
# Migrate (several replicas starting at once take turns: an advisory lock), then serve.
CMD ["sh", "-c", "crm migrate && exec crm serve --workers ${CRM_WORKERS:-2}"]
