"""Checkpoint references become local files: paths, http(s) URLs, run outputs."""

from __future__ import annotations

import hashlib
import http.server
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from himl_kernel.builtin import checkpoints as builtin_checkpoints
from himl_kernel.checkpoints import default_cache_dir, parse_run_reference, resolve_checkpoint
from himl_kernel.errors import HimlError
from himl_kernel.plugins import PluginHost, build_host
from himl_kernel.runstore import RunStore

CONTENT = b"weights " * 4096
CONTENT_SHA = hashlib.sha256(CONTENT).hexdigest()


# --- a local HTTP server -------------------------------------------------------


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    delay_s: float = 0.0
    declared_length: int | None = None  # a Content-Length larger than the body simulates a broken connection


@dataclass
class Server:
    base: str
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def count(self, path: str) -> int:
        return sum(1 for p in self.requests if p == path)


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(base="")
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                state.requests.append(self.path)
            route = state.routes.get(self.path)
            if route is None:
                self.send_error(404, "Not Found")
                return
            time.sleep(route.delay_s)
            if route.status != 200:
                self.send_error(route.status)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(route.declared_length or len(route.body)))
            self.end_headers()
            self.wfile.write(route.body)
            if route.declared_length is not None:
                self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test server is on 127.0.0.1: never send its requests through a proxy."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def host() -> PluginHost:
    """Only the built-in checkpoint sources, whatever else is installed."""
    return build_host(autoload=False, builtins=False, extra_plugins={"checkpoints": builtin_checkpoints})


def cached_files(cache: Path) -> list[str]:
    """Every file under the cache except the lock files."""
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file() and p.name != ".lock")


# --- the built-in plugin ---------------------------------------------------------


def test_builtin_plugin_registers_url_run_and_path_in_that_order() -> None:
    host = build_host(autoload=False)
    assert [e.name for e in host.checkpoint_sources.by_priority()] == ["url", "run", "path"]
    assert all(e.is_lazy for e in host.checkpoint_sources)


def test_resolving_a_local_path_imports_nothing_heavy(tmp_path: Path) -> None:
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"x")
    code = (
        "import sys\n"
        "from himl_kernel.builtin import checkpoints as plugin\n"
        "from himl_kernel.plugins import build_host\n"
        "from himl_kernel.checkpoints import resolve_checkpoint\n"
        "host = build_host(autoload=False, builtins=False, extra_plugins={'checkpoints': plugin})\n"
        f"print(resolve_checkpoint({str(ckpt)!r}, host=host))\n"
        "print(sorted(m for m in ('mlflow', 'urllib.request', 'torch') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [str(ckpt.resolve()), "[]"]


def test_default_cache_dir_follows_himl_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HIML_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "checkpoints"
    monkeypatch.delenv("HIML_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "himl" / "checkpoints"


# --- malformed references -----------------------------------------------------------


@pytest.mark.parametrize(
    "reference", ["", "   ", ":x", "abc:", "abc:/", "ftp://host/a.ckpt", "s3://bucket/a.ckpt", "http://"]
)
def test_malformed_reference_is_one_line_error(host: PluginHost, tmp_path: Path, reference: str) -> None:
    with pytest.raises(HimlError) as info:
        resolve_checkpoint(reference, host=host, cache_dir=tmp_path)
    message = str(info.value)
    assert message == (
        f"malformed checkpoint reference {reference!r}: expected a file path, an http(s) URL, or RUN_ID:path/in/outputs"
    )
    assert "\n" not in message


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("3f2a9c:checkpoints/last.ckpt", ("3f2a9c", "checkpoints/last.ckpt")),
        ("run_1.b-2:best.ckpt", ("run_1.b-2", "best.ckpt")),
        ("C:\\models\\last.ckpt", None),
        ("C:/models/last.ckpt", None),
        ("https://host/a.ckpt", None),
        ("abc:", None),
        ("./run:a.ckpt", None),
        ("models/last.ckpt", None),
    ],
)
def test_parse_run_reference(reference: str, expected: tuple[str, str] | None) -> None:
    assert parse_run_reference(reference) == expected


# --- local paths ------------------------------------------------------------------


def test_local_path_resolves_to_the_file(host: PluginHost, tmp_path: Path) -> None:
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"x")
    assert resolve_checkpoint(str(ckpt), host=host, cache_dir=tmp_path / "cache") == ckpt.resolve()
    assert resolve_checkpoint(ckpt, host=host, cache_dir=tmp_path / "cache") == ckpt.resolve()
    assert not (tmp_path / "cache").exists()


def test_local_path_expands_home(host: PluginHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "m.ckpt").write_bytes(b"x")
    assert resolve_checkpoint("~/m.ckpt", host=host, cache_dir=tmp_path / "cache") == (tmp_path / "m.ckpt").resolve()


def test_missing_local_path_is_one_line_error(host: PluginHost, tmp_path: Path) -> None:
    missing = tmp_path / "nope.ckpt"
    with pytest.raises(HimlError, match=r"^checkpoint file '.*nope\.ckpt' does not exist$"):
        resolve_checkpoint(str(missing), host=host, cache_dir=tmp_path)


def test_folder_is_not_a_checkpoint(host: PluginHost, tmp_path: Path) -> None:
    with pytest.raises(HimlError, match="is a folder"):
        resolve_checkpoint(str(tmp_path), host=host, cache_dir=tmp_path / "cache")


# --- http(s) URLs -------------------------------------------------------------------


def test_url_is_downloaded_once_then_served_from_the_cache(host: PluginHost, server: Server, tmp_path: Path) -> None:
    server.routes["/models/last.ckpt"] = Route(CONTENT)
    url = server.url("/models/last.ckpt")
    first = resolve_checkpoint(url, host=host, cache_dir=tmp_path)
    assert first.read_bytes() == CONTENT
    assert first.name == "last.ckpt"
    assert first.parent == tmp_path / "url" / hashlib.sha256(url.encode()).hexdigest()
    second = resolve_checkpoint(url, host=host, cache_dir=tmp_path)
    assert second == first
    assert server.count("/models/last.ckpt") == 1


def test_url_with_matching_sha256(host: PluginHost, server: Server, tmp_path: Path) -> None:
    server.routes["/a.ckpt"] = Route(CONTENT)
    path = resolve_checkpoint(server.url(f"/a.ckpt#sha256={CONTENT_SHA.upper()}"), host=host, cache_dir=tmp_path)
    assert path.read_bytes() == CONTENT
    # the digest is remembered: pinning it again, or not, needs no new request
    assert resolve_checkpoint(server.url(f"/a.ckpt#sha256={CONTENT_SHA}"), host=host, cache_dir=tmp_path) == path
    assert resolve_checkpoint(server.url("/a.ckpt"), host=host, cache_dir=tmp_path) == path
    assert server.count("/a.ckpt") == 1


def test_url_with_wrong_sha256_keeps_nothing(host: PluginHost, server: Server, tmp_path: Path) -> None:
    server.routes["/a.ckpt"] = Route(CONTENT)
    wrong = "0" * 64
    url = server.url(f"/a.ckpt#sha256={wrong}")
    with pytest.raises(HimlError) as info:
        resolve_checkpoint(url, host=host, cache_dir=tmp_path)
    message = str(info.value)
    assert server.url("/a.ckpt") in message
    assert f"expected {wrong}" in message
    assert f"got {CONTENT_SHA}" in message
    assert "\n" not in message
    assert cached_files(tmp_path) == []


def test_cached_file_with_another_digest_is_downloaded_again(host: PluginHost, server: Server, tmp_path: Path) -> None:
    server.routes["/a.ckpt"] = Route(b"old weights")
    old = resolve_checkpoint(server.url("/a.ckpt"), host=host, cache_dir=tmp_path)
    server.routes["/a.ckpt"] = Route(CONTENT)
    new = resolve_checkpoint(server.url(f"/a.ckpt#sha256={CONTENT_SHA}"), host=host, cache_dir=tmp_path)
    assert new == old
    assert new.read_bytes() == CONTENT
    assert server.count("/a.ckpt") == 2


def test_malformed_sha256_fragment(host: PluginHost, server: Server, tmp_path: Path) -> None:
    with pytest.raises(HimlError, match="64 hex digits"):
        resolve_checkpoint(server.url("/a.ckpt#sha256=abc"), host=host, cache_dir=tmp_path)
    assert server.requests == []


def test_http_error_is_one_line_with_the_status(host: PluginHost, server: Server, tmp_path: Path) -> None:
    with pytest.raises(HimlError) as info:
        resolve_checkpoint(server.url("/missing.ckpt"), host=host, cache_dir=tmp_path)
    message = str(info.value)
    assert message.startswith(f"cannot download checkpoint {server.url('/missing.ckpt')}: HTTP 404")
    assert "\n" not in message
    assert cached_files(tmp_path) == []


def test_broken_connection_leaves_no_partial_file(host: PluginHost, server: Server, tmp_path: Path) -> None:
    server.routes["/cut.ckpt"] = Route(CONTENT[:100], declared_length=len(CONTENT))
    with pytest.raises(HimlError, match="cannot download checkpoint"):
        resolve_checkpoint(server.url("/cut.ckpt"), host=host, cache_dir=tmp_path)
    assert cached_files(tmp_path) == []
    # once the server is fixed, the same URL downloads fine
    server.routes["/cut.ckpt"] = Route(CONTENT)
    assert resolve_checkpoint(server.url("/cut.ckpt"), host=host, cache_dir=tmp_path).read_bytes() == CONTENT


def test_concurrent_downloads_of_one_url_make_one_request(host: PluginHost, server: Server, tmp_path: Path) -> None:
    server.routes["/slow.ckpt"] = Route(CONTENT, delay_s=0.3)
    results: list[Path] = []
    errors: list[BaseException] = []

    def fetch() -> None:
        try:
            results.append(resolve_checkpoint(server.url("/slow.ckpt"), host=host, cache_dir=tmp_path))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert len(results) == 4 and len(set(results)) == 1
    assert results[0].read_bytes() == CONTENT
    assert server.count("/slow.ckpt") == 1
    assert [p.split("/")[-1] for p in cached_files(tmp_path)] == [".sha256", "slow.ckpt"]


def test_credentials_in_the_url_are_not_shown(host: PluginHost, server: Server, tmp_path: Path) -> None:
    url = server.url("/missing.ckpt?sig=SECRET").replace("http://", "http://user:PASSWORD@")
    with pytest.raises(HimlError) as info:
        resolve_checkpoint(url, host=host, cache_dir=tmp_path)
    assert "SECRET" not in str(info.value)
    assert "PASSWORD" not in str(info.value)


# --- run outputs --------------------------------------------------------------------


@dataclass
class StoreWithRun:
    home: Path
    run_id: str
    checkpoint: Path


@pytest.fixture(scope="module")
def store_with_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreWithRun]:
    home = tmp_path_factory.mktemp("himl_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        store = RunStore(home=home)
        run = store.create_run("checkpoints-test", "trained")
        outputs, _ = store.folders(run)
        checkpoint = outputs / "checkpoints" / "last.ckpt"
        checkpoint.parent.mkdir(parents=True)
        checkpoint.write_bytes(b"trained weights")
        store.finish(run.run_id)
        yield StoreWithRun(home=home, run_id=run.run_id, checkpoint=checkpoint)


@pytest.fixture
def run_store_env(store_with_run: StoreWithRun, monkeypatch: pytest.MonkeyPatch) -> StoreWithRun:
    monkeypatch.setenv("HIML_HOME", str(store_with_run.home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return store_with_run


def test_run_reference_resolves_to_the_output_file(
    host: PluginHost, run_store_env: StoreWithRun, tmp_path: Path
) -> None:
    path = resolve_checkpoint(f"{run_store_env.run_id}:checkpoints/last.ckpt", host=host, cache_dir=tmp_path)
    assert path.read_bytes() == b"trained weights"
    assert path.resolve() == run_store_env.checkpoint.resolve()


def test_run_reference_through_the_default_host(run_store_env: StoreWithRun, tmp_path: Path) -> None:
    path = resolve_checkpoint(f"{run_store_env.run_id}:checkpoints/last.ckpt", cache_dir=tmp_path)
    assert path.read_bytes() == b"trained weights"


def test_missing_file_in_a_known_run(host: PluginHost, run_store_env: StoreWithRun, tmp_path: Path) -> None:
    with pytest.raises(HimlError) as info:
        resolve_checkpoint(f"{run_store_env.run_id}:checkpoints/best.ckpt", host=host, cache_dir=tmp_path)
    assert str(info.value) == f"run {run_store_env.run_id} has no file 'outputs/checkpoints/best.ckpt'"


def test_run_reference_may_not_leave_the_outputs(host: PluginHost, run_store_env: StoreWithRun, tmp_path: Path) -> None:
    with pytest.raises(HimlError, match=r"inside the run's outputs"):
        resolve_checkpoint(f"{run_store_env.run_id}:../logs/x.txt", host=host, cache_dir=tmp_path)


def test_unknown_run_id_is_one_line_error(host: PluginHost, run_store_env: StoreWithRun, tmp_path: Path) -> None:
    with pytest.raises(HimlError) as info:
        resolve_checkpoint("nosuchrun123:checkpoints/last.ckpt", host=host, cache_dir=tmp_path)
    message = str(info.value)
    assert message.startswith("unknown run id 'nosuchrun123'")
    assert str(run_store_env.home) in message
    assert "\n" not in message


def test_existing_local_file_that_looks_like_a_run_reference(
    host: PluginHost, run_store_env: StoreWithRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "epoch:3.ckpt").write_bytes(b"x")
    assert (
        resolve_checkpoint("epoch:3.ckpt", host=host, cache_dir=tmp_path / "cache")
        == (tmp_path / "epoch:3.ckpt").resolve()
    )


def test_run_reference_without_a_run_store_creates_none(
    host: PluginHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "empty_home"
    monkeypatch.setenv("HIML_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(HimlError, match=r"^unknown run id 'abc123'"):
        resolve_checkpoint("abc123:checkpoints/last.ckpt", host=host, cache_dir=tmp_path / "cache")
    assert not home.exists()
