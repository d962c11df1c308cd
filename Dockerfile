# Concord image: one image for the web server and the Celery worker.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    CONCORD_VAR_DIR=/var/lib/concord MEDIA_ROOT=/var/lib/concord/media \
    STATIC_ROOT=/app/staticfiles
WORKDIR /app
RUN useradd --create-home --uid 1000 concord
COPY pyproject.toml README.md ./
COPY config ./config
COPY labeling ./labeling
COPY consistency ./consistency
COPY provenance ./provenance
COPY datasets ./datasets
COPY api ./api
RUN pip install .
COPY manage.py ./
COPY templates ./templates
COPY static ./static
# collectstatic needs settings but no database or real secret.
RUN SECRET_KEY=build-only DEBUG=0 python manage.py collectstatic --noinput \
    && mkdir -p /var/lib/concord/media && chown -R concord /var/lib/concord
USER concord
EXPOSE 8000
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--worker-class", "gthread", "--threads", "4", "--timeout", "600"]
