"""An image reference that is not on the machine is pulled: from a registry this test serves on
loopback (no registry beyond the machine can be reached here), holding nginx:1.22's layers."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import requests

from emulator.options import EmulatorOptions
from emulator.pytest_plugin import EmuUp
from emulator.runs.labels import TEST
from tests.support import free_port

pytestmark = pytest.mark.docker

SOURCE_IMAGE = "nginx:1.22"
MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def _blobs_of(saved: Path) -> tuple[bytes, dict[str, Path | bytes]]:
    """From `docker save` output: the schema 2 manifest and the blobs it names, by digest."""
    folder = saved.parent / "image"
    with tarfile.open(saved) as tar:
        tar.extractall(folder, filter="data")
    entry = json.loads((folder / "manifest.json").read_text())[0]
    # A label of its own makes it an image the engine does not have yet, though its layers are
    # nginx's: so the engine really pulls it.
    image_config = json.loads((folder / entry["Config"]).read_text())
    image_config["config"]["Labels"] = {
        **(image_config["config"].get("Labels") or {}),
        TEST: "pull",
    }
    config = json.dumps(image_config).encode()
    blobs: dict[str, Path | bytes] = {}

    def digest_of(data: bytes) -> str:
        return "sha256:" + hashlib.sha256(data).hexdigest()

    layers = []
    for name in entry["Layers"]:
        path = folder / name
        data = path.read_bytes()
        digest = digest_of(data)
        blobs[digest] = path
        # An uncompressed layer: the engine verifies the digest, then detects the compression.
        layers.append(
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": len(data),
                "digest": digest,
            }
        )
    blobs[digest_of(config)] = config
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": len(config),
            "digest": digest_of(config),
        },
        "layers": layers,
    }
    return json.dumps(manifest).encode(), blobs


@pytest.fixture(scope="module")
def registry(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[str]:
    """A registry on 127.0.0.1 (the engine trusts loopback registries over plain HTTP) that
    serves one image; yields its host:port."""
    saved = tmp_path_factory.mktemp("registry") / "image.tar"
    with saved.open("wb") as out:
        for chunk in docker_client.api.get_image(SOURCE_IMAGE):
            out.write(chunk)
    manifest, blobs = _blobs_of(saved)
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()

    class Registry(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.answer(body=False)

        def do_GET(self) -> None:
            self.answer(body=True)

        def answer(self, body: bool) -> None:
            parts = self.path.split("?")[0].split("/")
            data: bytes | None = None
            kind = "application/octet-stream"
            if self.path.rstrip("/") == "/v2":
                data, kind = b"{}", "application/json"
            elif len(parts) >= 4 and parts[-2] == "manifests":
                data, kind = manifest, MANIFEST
            elif len(parts) >= 4 and parts[-2] == "blobs" and parts[-1] in blobs:
                blob = blobs[parts[-1]]
                data = blob.read_bytes() if isinstance(blob, Path) else blob
            if data is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Docker-Distribution-API-Version", "registry/2.0")
            if kind == MANIFEST:
                self.send_header("Docker-Content-Digest", manifest_digest)
            self.end_headers()
            if body:
                self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


def reference_project(root: Path, image: str) -> Path:
    """One class `Web` on port 80, its image the reference `image`."""
    (root / "src").mkdir()
    (root / "src" / "index.ts").write_text(
        "export class Web extends Container { defaultPort = 80; }\n"
    )
    (root / "wrangler.jsonc").write_text(
        json.dumps(
            {
                "name": "pulled",
                "main": "src/index.ts",
                "containers": [{"class_name": "Web", "image": image}],
                "durable_objects": {"bindings": [{"name": "WEB", "class_name": "Web"}]},
                "migrations": [{"tag": "v1", "new_sqlite_classes": ["Web"]}],
            }
        )
    )
    return root / "wrangler.jsonc"


def test_a_missing_image_reference_is_pulled_then_served(
    tmp_path: Path, emu_up: EmuUp, docker_client: docker.DockerClient, registry: str
) -> None:
    image = f"{registry}/emu-pull-test:1"
    lines: list[tuple[str, str]] = []
    try:
        emu = emu_up(
            reference_project(tmp_path, image),
            EmulatorOptions(on_output=lambda source, line: lines.append((source, line))),
        )
        shown = [line for source, line in lines if source == "build Web"]
        assert shown[0] == f"pulling {image}"
        # The engine's progress as it goes: a line per layer it fetches (which ones it reports
        # depends on what it has seen before, so not checked here), then its summary.
        assert shown[-2].startswith("Digest: sha256:"), shown
        assert shown[-1] == f"Status: Downloaded newer image for {image}", shown
        assert docker_client.images.get(image).labels[TEST] == "pull"  # on the machine now
        resp = requests.get(emu.url + "/", timeout=60)
        assert resp.status_code == 200 and "nginx" in resp.text
        assert emu.status()["classes"][0]["image"] == image
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(image, force=True)


def test_a_failed_pull_answers_500_with_the_reason(tmp_path: Path, emu_up: EmuUp) -> None:
    image = f"127.0.0.1:{free_port()}/emu-nowhere:1"  # nothing listens there
    emu = emu_up(reference_project(tmp_path, image))
    resp = requests.get(emu.url + "/", headers={"Accept": "application/json"}, timeout=60)
    assert resp.status_code == 500
    error = resp.json()["error"]
    assert error.startswith(f"Failed to start container: image pull of {image} failed: "), error
    assert "connection refused" in error.lower(), error
    assert emu.status()["classes"][0]["image_error"].startswith(f"image pull of {image} failed")
