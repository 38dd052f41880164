# CPU image of the mask-detection server. Build: docker build -t maskcam .
# Run on a LAN (WebRTC media needs the host's own addresses and UDP ports, hence host networking):
#   docker run --rm --network host -e MASKCAM_HTTPS=1 -v maskcam-certs:/app/certs -v maskcam-data:/app/data maskcam
# See docs/DEPLOY.md for every setting, TURN (docker-compose.yml) and scaling.
FROM python:3.11-slim

# MALLOC_MMAP_THRESHOLD_: frame-sized buffers are mmapped and given back when freed; with glibc's dynamic
# threshold they stay resident and RSS creeps up over sessions (server/memory.py has the figures).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MALLOC_MMAP_THRESHOLD_=131072

WORKDIR /app

# Only the runtime closure (no torch: the image serves the ONNX classifier with onnxruntime), pinned to the
# versions the tests ran against. Every package is a manylinux wheel: no compiler is needed.
COPY deploy/requirements-runtime.txt deploy/constraints-runtime.txt /tmp/
RUN pip install -r /tmp/requirements-runtime.txt -c /tmp/constraints-runtime.txt \
    && rm /tmp/requirements-runtime.txt /tmp/constraints-runtime.txt

RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin maskcam \
    && mkdir -p /app/certs /app/data /recordings \
    && chown maskcam /app/certs /app/data /recordings

COPY run_server.py ./
COPY server/ server/
COPY vision/ vision/
COPY static/ static/
COPY models/mask_classifier.onnx models/
COPY deploy/healthcheck.py deploy/

USER maskcam

# Serve every interface of the container; logs as JSON lines for a log collector. --https, --token,
# --ice-server and the rest: set MASKCAM_* at `docker run -e` or in docker-compose.yml.
ENV MASKCAM_HOST=0.0.0.0 \
    MASKCAM_PORT=8080 \
    MASKCAM_LOG_FORMAT=json
EXPOSE 8080/tcp

HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "deploy/healthcheck.py"]

# run_server.py closes every peer connection and exits on SIGTERM (docker stop).
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "run_server.py"]
CMD []
