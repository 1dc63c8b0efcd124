"""Downloads through pooch: checksum, retries, mirrors; offline and cached paths unchanged."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading

import pytest

from pepr_utils.data import download
from pepr_utils.errors import PeprError


@pytest.fixture
def server(tmp_path):
    """A local HTTP server over tmp_path/www; yields its base URL."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


def test_download_checks_the_checksum_and_caches(server, tmp_path, monkeypatch):
    www, base = server
    (www / "a.csv").write_text("x,y\n1,2\n")
    sha = hashlib.sha256((www / "a.csv").read_bytes()).hexdigest()
    dest = tmp_path / "cache" / "a.csv"
    assert download.fetch(base + "a.csv", dest, sha256=sha, offline=False) == dest
    assert dest.read_text() == "x,y\n1,2\n"
    (www / "a.csv").unlink()  # cached: no network needed any more, even offline
    assert download.fetch(base + "a.csv", dest, sha256=sha, offline=True) == dest


def test_a_failing_url_falls_back_to_a_mirror(server, tmp_path, monkeypatch):
    www, base = server
    (www / "m").mkdir()
    (www / "m" / "b.npz").write_bytes(b"\x00" * 100)
    md5 = hashlib.md5(b"\x00" * 100).hexdigest()
    monkeypatch.setattr(download, "RETRIES", 0)
    monkeypatch.setenv("PEPR_MIRRORS", f"{base}missing/={base}m/")
    assert download.mirror_urls(base + "missing/b.npz") == [base + "missing/b.npz", base + "m/b.npz"]
    dest = download.fetch(base + "missing/b.npz", tmp_path / "b.npz", md5=md5, offline=False)
    assert dest.read_bytes() == b"\x00" * 100


def test_a_wrong_checksum_is_discarded_and_reported(server, tmp_path, monkeypatch):
    www, base = server
    (www / "c.csv").write_text("tampered\n")
    monkeypatch.setattr(download, "RETRIES", 0)
    monkeypatch.delenv("PEPR_MIRRORS", raising=False)
    with pytest.raises(PeprError, match="checksum mismatch"):
        download.fetch(base + "c.csv", tmp_path / "c.csv", sha256="0" * 64, offline=False)
    assert not (tmp_path / "c.csv").exists()


def test_offline_refuses_and_names_the_file(tmp_path):
    with pytest.raises(PeprError, match="d.npz.*offline"):
        download.fetch("http://127.0.0.1:9/d.npz", tmp_path / "d.npz", md5="0" * 32, offline=True)


def test_paper_files_have_a_cdn_mirror():
    from pepr_utils.paper import reference

    url = reference.URL_TEMPLATE.format(name="model_names.csv")
    assert download.mirror_urls(url, env="")[1] == \
        f"https://cdn.jsdelivr.net/gh/saintslab/PePR@{reference.COMMIT}/data/model_names.csv"
