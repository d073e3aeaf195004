"""``himl cpath dsa-upload`` against a local HTTP server that answers the Girder endpoints girder-client calls.

The server checks what a Digital Slide Archive checks: the API key, the token on
every later request, and each annotation against the rectangle part of the
large_image annotation schema (HTTP 400 for a document it would refuse).
"""

from __future__ import annotations

import json
import re
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


#: Colours the annotation schema accepts: #RGB to #RRGGBB hex, rgb(r, g, b) and rgba(r, g, b, a).
COLOUR = re.compile(r"^(#[0-9a-fA-F]{3,6}|rgb\(\d+,\s*\d+,\s*\d+\)|rgba\(\d+,\s*\d+,\s*\d+,\s*(\d?\.|)\d+\))$")
ANNOTATION_KEYS = {"name", "description", "display", "attributes", "elements"}
RECTANGLE_KEYS = {"type", "id", "user", "label", "lineColor", "lineWidth", "group"}
RECTANGLE_KEYS |= {"center", "width", "height", "rotation", "normal", "fillColor"}
LABEL_KEYS = {"value", "visibility", "fontSize", "color"}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def annotation_problem(document: Any) -> str | None:
    """Why the annotation schema refuses ``document`` (only rectangles are accepted here), or None."""
    if not isinstance(document, dict):
        return "an annotation must be a JSON object"
    unknown = sorted(set(document) - ANNOTATION_KEYS)
    if unknown:
        return f"annotation has unknown properties {unknown}"
    if "name" in document and (not isinstance(document["name"], str) or not document["name"]):
        return "annotation name must be a non-empty string"
    elements = document.get("elements", [])
    if not isinstance(elements, list):
        return "annotation elements must be a list"
    for index, element in enumerate(elements):
        where = f"elements[{index}]"
        if not isinstance(element, dict) or element.get("type") != "rectangle":
            return f"{where}: only rectangle elements are accepted"
        unknown = sorted(set(element) - RECTANGLE_KEYS)
        if unknown:
            return f"{where}: unknown properties {unknown}"
        for key in ("center", "width", "height"):
            if key not in element:
                return f"{where}: {key} is required"
        for key in ("center", "normal"):
            if key in element:
                point = element[key]
                if not (isinstance(point, list) and len(point) == 3 and all(_number(v) for v in point)):
                    return f"{where}: {key} must be three numbers"
        for key in ("width", "height", "lineWidth"):
            if key in element and not (_number(element[key]) and element[key] >= 0):
                return f"{where}: {key} must be a number >= 0"
        if "rotation" in element and not _number(element["rotation"]):
            return f"{where}: rotation must be a number"
        for key in ("fillColor", "lineColor"):
            if key in element and not (isinstance(element[key], str) and COLOUR.match(element[key])):
                return f"{where}: {key} {element[key]!r} is not a colour"
        label = element.get("label", {"value": ""})
        if not isinstance(label, dict) or not isinstance(label.get("value"), str) or set(label) - LABEL_KEYS:
            return f"{where}: label must be an object with a string value"
    return None


@dataclass
class FakeGirder:
    """What the server received (method, path, query, token, body of every request) and what it accepted."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    #: The annotations the server accepted, by item id.
    stored: dict[str, Any] = field(default_factory=dict)

    def annotations(self) -> dict[str, dict[str, Any]]:
        return dict(self.stored)


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
            path, query, body = self._record()
            if path == "/api/v1/api_key/token":
                if query.get("key") != API_KEY:
                    self._reply(401, {"message": "Invalid API key.", "type": "rest"})
                else:
                    user = {"_id": "user-1", "login": "pathologist"}
                    self._reply(200, {"user": user, "authToken": {"token": TOKEN, "expires": "2099-01-01T00:00:00"}})
            elif self.headers.get("Girder-Token") != TOKEN:
                self._reply(401, {"message": "You must be logged in.", "type": "access"})
            elif path == "/api/v1/annotation":
                item = query.get("itemId")
                problem = annotation_problem(body)
                if item not in {i["_id"] for i in ITEMS}:
                    self._reply(400, {"message": f"Invalid ObjectId: {item}", "type": "validation"})
                elif problem is not None:
                    self._reply(400, {"message": problem, "type": "validation"})
                else:
                    state.stored[item] = body
                    self._reply(200, {"_id": f"annotation-{item}", "itemId": item})
            else:
                self._reply(404, {"message": f"no route {path}"})

        def do_GET(self) -> None:
            path, query, _ = self._record()
            if self.headers.get("Girder-Token") != TOKEN:
                self._reply(401, {"message": "You must be logged in.", "type": "access"})
            elif path == "/api/v1/item":
                offset, limit = int(query.get("offset", 0)), int(query.get("limit", 50))
                items = [i for i in ITEMS if i["folderId"] == query["folderId"]]
                self._reply(200, items[offset : offset + limit])
            elif path == "/api/v1/resource/search":
                if "q" not in query or "types" not in query:
                    self._reply(400, {"message": "Parameters q and types are required.", "type": "rest"})
                else:
                    found = (
                        [i for i in ITEMS if query["q"] in i["name"]] if "item" in json.loads(query["types"]) else []
                    )
                    self._reply(200, {"item": found})
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
    assert re.search(r"\d\d:\d\d:\d\d DSA upload: 3 of 3 slides, .* slides/s", result.stderr)

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


GOOD_RECTANGLE = {"type": "rectangle", "center": [112, 112, 0], "width": 224, "height": 224, "rotation": 0}
MALFORMED: list[tuple[str, Any, str]] = [
    ("not-an-object", [GOOD_RECTANGLE], "an annotation must be a JSON object"),
    ("empty-name", {"name": "", "elements": []}, "annotation name must be a non-empty string"),
    ("unknown-property", {"name": "a", "colour": "red"}, "annotation has unknown properties ['colour']"),
    ("elements-not-a-list", {"name": "a", "elements": GOOD_RECTANGLE}, "annotation elements must be a list"),
    ("no-center", {"elements": [{k: v for k, v in GOOD_RECTANGLE.items() if k != "center"}]}, "center is required"),
    ("two-coordinates", {"elements": [{**GOOD_RECTANGLE, "center": [1, 2]}]}, "elements[0]: center must be three"),
    ("negative-width", {"elements": [{**GOOD_RECTANGLE, "width": -1}]}, "elements[0]: width must be a number >= 0"),
    ("no-height", {"elements": [{k: v for k, v in GOOD_RECTANGLE.items() if k != "height"}]}, "height is required"),
    ("bad-colour", {"elements": [{**GOOD_RECTANGLE, "fillColor": "reddish"}]}, "fillColor 'reddish' is not a colour"),
    ("label-not-object", {"elements": [{**GOOD_RECTANGLE, "label": "0.5"}]}, "label must be an object"),
    ("other-shape", {"elements": [{"type": "circle", "center": [0, 0, 0]}]}, "only rectangle elements"),
]


def test_the_server_refuses_a_wrong_key_a_wrong_token_and_malformed_annotations(girder: FakeGirder) -> None:
    """The stand-in is strict where the DSA is: otherwise the upload tests would pass with wrong requests."""
    import girder_client

    client = girder_client.GirderClient(apiUrl=girder.url)
    with pytest.raises(girder_client.HttpError) as wrong_key:
        client.authenticate(apiKey="not-the-key")
    assert wrong_key.value.status == 401
    client.setToken("not-the-token")
    with pytest.raises(girder_client.HttpError) as wrong_token:
        client.post("annotation", parameters={"itemId": "item-a"}, json={"name": "a", "elements": [GOOD_RECTANGLE]})
    assert wrong_token.value.status == 401
    with pytest.raises(girder_client.HttpError) as listing:
        client.get("item", parameters={"folderId": "folder-1"})
    assert listing.value.status == 401

    client.authenticate(apiKey=API_KEY)
    accepted = client.post(
        "annotation", parameters={"itemId": "item-a"}, json={"name": "a", "elements": [GOOD_RECTANGLE]}
    )
    assert accepted["_id"] == "annotation-item-a"
    with pytest.raises(girder_client.HttpError) as unknown_item:
        client.post("annotation", parameters={"itemId": "item-zz"}, json={"name": "a", "elements": []})
    assert unknown_item.value.status == 400
    for name, document, reason in MALFORMED:
        with pytest.raises(girder_client.HttpError) as refused:
            client.post("annotation", parameters={"itemId": "item-b"}, json=document)
        assert refused.value.status == 400, name
        assert reason in json.loads(refused.value.responseText)["message"], (name, refused.value.responseText)
    assert girder.annotations() == {"item-a": {"name": "a", "elements": [GOOD_RECTANGLE]}}


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
