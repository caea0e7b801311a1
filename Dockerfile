# syntax=docker/dockerfile:1
# One image for web, worker, beat, watcher and the migration job (the command differs).
# The base image is pinned by digest; move it deliberately (docker buildx imagetools inspect
# python:3.11-slim-bookworm gives the current one). Dependencies install from the hash-locked
# requirements.txt (bin/lock); STORAGE_EXTRAS=s3|azure|gcs adds a cloud SDK for bundle storage.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91
FROM ${PYTHON_IMAGE}
ARG STORAGE_EXTRAS=""
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 DJANGO_STATIC_ROOT=/app/staticfiles
WORKDIR /app
COPY requirements*.txt ./
RUN pip install --no-cache-dir --require-hashes -r "requirements${STORAGE_EXTRAS:+-$STORAGE_EXTRAS}.txt"
# .dockerignore keeps .env, var/, .git, .venv, tests and bench out of this copy.
COPY . .
RUN DJANGO_SECRET_KEY=build-only python manage.py collectstatic --noinput \
    && useradd --system --uid 10001 --user-group --no-create-home wnd \
    && install -d -o 10001 -g 10001 /var/lib/wnd/bundles
# Numeric, so that Kubernetes can check runAsNonRoot. The code stays owned by root: read-only;
# /var/lib/wnd/bundles is the bundle volume's mount point (a fresh compose volume takes its owner).
USER 10001:10001
EXPOSE 8000
CMD ["uvicorn", "dashboard.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--no-access-log", "--proxy-headers"]
