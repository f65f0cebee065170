"""A tiny archive pair with the Oxford-IIIT Pet layout, and an HTTP server on loopback that serves it.

The server supports Range requests (206), records what it was asked, and can be told to cut a
transfer short once, to test resumed downloads.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

# (breed as in image names, class_id, species: 1 cat, 2 dog)
BREEDS = [("Abyssinian", 1, 1), ("american_bulldog", 2, 2), ("Bengal", 6, 1)]
TRAIN_PER_CLASS = 6
TEST_PER_CLASS = 3


def _jpeg(colour: tuple[int, int, int], seed: int) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour)[None, None, :] + rng.normal(0, 25, (80, 100, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def build_archives() -> dict[str, bytes]:
    """{"images.tar.gz": ..., "annotations.tar.gz": ...} with 3 breeds, official-style split."""
    colours = [(200, 60, 60), (60, 200, 60), (60, 60, 200)]
    images, listing, trainval, test = {}, [], [], []
    for (breed, class_id, species), colour in zip(BREEDS, colours):
        for n in range(1, TRAIN_PER_CLASS + TEST_PER_CLASS + 1):
            name = f"{breed}_{n}"
            images[f"images/{name}.jpg"] = _jpeg(colour, seed=class_id * 100 + n)
            line = f"{name} {class_id} {species} {n}"
            listing.append(line)
            (trainval if n <= TRAIN_PER_CLASS else test).append(line)
    header = "#Image CLASS-ID SPECIES BREED ID\n#ID: 1:37 Class ids\n"
    annotations = {
        "annotations/list.txt": (header + "\n".join(listing) + "\n").encode(),
        "annotations/trainval.txt": ("\n".join(trainval) + "\n").encode(),
        "annotations/test.txt": ("\n".join(test) + "\n").encode(),
    }
    return {"images.tar.gz": _tar_gz(images), "annotations.tar.gz": _tar_gz(annotations)}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class ArchiveServer:
    """Serves `files` on 127.0.0.1 at a free port; `cut_once[name] = n` sends n bytes then closes, once."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.requests: list[tuple[str, str | None]] = []
        self.cut_once: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.lstrip("/")
                server.requests.append((name, self.headers.get("Range")))
                data = server.files.get(name)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                ranged = self.headers.get("Range")
                if ranged and ranged.startswith("bytes="):
                    start = int(ranged[6:].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut = server.cut_once.pop(name, None)
                if cut is not None:
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "ArchiveServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
