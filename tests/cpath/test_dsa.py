"""``himl cpath dsa-upload`` against a local HTTP server that answers the Girder endpoints girder-client calls."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from himl_cpath.dsa import connect, read_attention_table, upload_attention

from himl_kernel.errors import HimlError
from tests.conftest import error_lines, run_himl

API_KEY = "secret-key"
TOKEN = "token-123"
ITEMS = [
    {"_id": "item-a", "name": "slide_a.svs", "folderId": "folder-1"},
    {"_id": "item-b", "name": "slide_b.tiff", "folderId": "folder-1"},
    {"_id": "item-x", "name": "slide_ab.svs", "folderId": "folder-2"},
]


@dataclass
class FakeGirder:
    """What the server received: (method, path, query, token, body) of every request."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)

    def annotations(self) -> dict[str, dict[str, Any]]:
        return {r["query"]["itemId"]: r["body"] for r in self.requests if r["path"] == "/api/v1/annotation"}


def _handler(state: FakeGirder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, payload: Any) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _record(self) -> tuple[str, dict[str, str], Any]:
            parsed = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            state.requests.append(
                {
                    "method": self.command,
                    "path": parsed.path,
                    "query": query,
                    "token": self.headers.get("Girder-Token"),
                    "body": body,
                }
            )
            return parsed.path, query, body

        def do_POST(self) -> None:
            path, query, _ = self._record()
            if path == "/api/v1/api_key/token":
                if query.get("key") != API_KEY:
                    self._reply(401, {"message": "Invalid API key.", "type": "rest"})
                else:
                    user = {"_id": "user-1", "login": "pathologist"}
                    self._reply(200, {"user": user, "authToken": {"token": TOKEN, "expires": "2099-01-01T00:00:00"}})
            elif path == "/api/v1/annotation" and self.headers.get("Girder-Token") == TOKEN:
                self._reply(200, {"_id": f"annotation-{query['itemId']}", "itemId": query["itemId"]})
            else:
                self._reply(401, {"message": "You must be logged in.", "type": "access"})

        def do_GET(self) -> None:
            path, query, _ = self._record()
            if self.headers.get("Girder-Token") != TOKEN:
                self._reply(401, {"message": "You must be logged in.", "type": "access"})
            elif path == "/api/v1/item":
                offset, limit = int(query.get("offset", 0)), int(query.get("limit", 50))
                items = [i for i in ITEMS if i["folderId"] == query["folderId"]]
                self._reply(200, items[offset : offset + limit])
            elif path == "/api/v1/resource/search":
                assert json.loads(query["types"]) == ["item"]
                self._reply(200, {"item": [i for i in ITEMS if query["q"] in i["name"]]})
            else:
                self._reply(404, {"message": f"no route {path}"})

    return Handler


@pytest.fixture
def girder() -> Iterator[FakeGirder]:
    state = FakeGirder(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}/api/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def write_test_output(path: Path) -> Path:
    """A per-tile table as DeepMIL writes it: slide, tile corners and attention."""
    rows = [
        ("slide_a", 0, 0, 224, 224, 0.10),
        ("slide_a", 224, 0, 448, 224, 0.60),
        ("slide_a", 448, 224, 672, 448, 0.30),
        ("slide_b", 1000, 2000, 1224, 2224, 0.5),
        ("slide_zz", 0, 0, 224, 224, 1.0),
    ]
    lines = ["slide_id,label,left,top,right,bottom,bag_attn"]
    lines += [f"{s},1,{x0},{y0},{x1},{y1},{a}" for s, x0, y0, x1, y1, a in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_dsa_upload_posts_one_attention_annotation_per_slide(girder: FakeGirder, tmp_path: Path) -> None:
    table = write_test_output(tmp_path / "test_output.csv")
    env = {"DSA_URL": girder.url, "DSA_API_KEY": API_KEY}
    result = run_himl("cpath", "dsa-upload", str(table), cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stderr  # slide_zz has no item
    assert "uploaded 2 annotation(s); 1 slide(s) had no DSA item" in result.stdout
    assert "no DSA item found for slide slide_zz" in result.stderr

    assert girder.requests[0]["path"] == "/api/v1/api_key/token" and girder.requests[0]["query"]["key"] == API_KEY
    assert all(r["token"] == TOKEN for r in girder.requests[1:])
    annotations = girder.annotations()
    assert set(annotations) == {"item-a", "item-b"}  # slide_a is not matched to slide_ab.svs
    doc_a = annotations["item-a"]
    assert doc_a["name"] == "attention"
    elements = doc_a["elements"]
    assert [e["type"] for e in elements] == ["rectangle"] * 3
    assert [e["center"] for e in elements] == [[112, 112, 0], [336, 112, 0], [560, 336, 0]]
    assert all(e["width"] == e["height"] == 224 for e in elements)
    assert [e["user"]["attention"] for e in elements] == [0.1, 0.6, 0.3]
    assert [e["label"]["value"] for e in elements] == ["0.1", "0.6", "0.3"]
    # least attention is blue, most is red
    assert elements[0]["fillColor"] == "rgba(0,0,255,0.5)" and elements[1]["fillColor"] == "rgba(255,0,0,0.5)"
    assert annotations["item-b"]["elements"][0]["center"] == [1112, 2112, 0]


def test_dsa_upload_finds_items_within_a_folder(girder: FakeGirder, tmp_path: Path) -> None:
    table = tmp_path / "attention.csv"
    table.write_text("slide_id,tile_x,tile_y,attention\nslide_ab,10,20,0.7\nslide_a,0,0,0.2\n", encoding="utf-8")
    client = connect({"DSA_URL": girder.url, "DSA_API_KEY": API_KEY})
    report = upload_attention(client, read_attention_table(table, tile_size=256), folder_id="folder-2")
    assert report.uploaded == {"slide_ab": "annotation-item-x"}
    assert report.missing == ["slide_a"]  # slide_a's item lives in another folder
    element = girder.annotations()["item-x"]["elements"][0]
    assert element["center"] == [138, 148, 0] and element["width"] == 256
    listing = [r for r in girder.requests if r["path"] == "/api/v1/item"]
    assert listing and all(r["query"]["folderId"] == "folder-2" for r in listing)


def test_dsa_upload_errors_are_one_line(girder: FakeGirder, tmp_path: Path) -> None:
    table = write_test_output(tmp_path / "test_output.csv")
    cases = [
        ({"DSA_URL": girder.url, "DSA_API_KEY": "wrong"}, "refused the API key: HTTP 401"),
        ({"DSA_API_KEY": API_KEY, "DSA_URL": ""}, "no DSA address: set DSA_URL"),
        ({"DSA_URL": girder.url, "DSA_API_KEY": ""}, "no DSA API key: set DSA_API_KEY"),
    ]
    for env, expected in cases:
        result = run_himl("cpath", "dsa-upload", str(table), cwd=tmp_path, env=env)
        lines = error_lines(result.stderr)
        assert result.returncode == 2 and len(lines) == 1 and expected in lines[0], result.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("slide_id,attention\ns,0.1\n", encoding="utf-8")
    with pytest.raises(HimlError, match="lacks the columns tile_x/left, tile_y/top"):
        read_attention_table(bad)
    unknown = tmp_path / "crck.csv"
    unknown.write_text("slide_id,tile_x,tile_y,right,bottom,attention\ns,-1,-1,,,0.1\n", encoding="utf-8")
    with pytest.raises(HimlError, match="line 2: tile -1, -1 has no level-0 coordinates"):
        read_attention_table(unknown)
    empty = tmp_path / "empty.csv"
    empty.write_text("slide_id,tile_x,tile_y,right,bottom,attention\ns,0,0,,,0.1\n", encoding="utf-8")
    with pytest.raises(HimlError, match="line 2: right/bottom are empty"):
        read_attention_table(empty)
    assert read_attention_table(empty, tile_size=512)["s"][0].width == 512
