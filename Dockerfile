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
ENTRYPOINT ["emu"]
