"""The documentation site builds (`mkdocs build --strict`) and, opened in a headless Chromium,
its index and an API page have no broken internal link."""

import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = os.environ.get("FASTCB_REQUIRE_DOCS_TOOLS") == "1"  # .ci/run: missing tools fail, not skip


def _tool(found, why):
    if not found:
        if REQUIRED:
            pytest.fail(f"{why} (FASTCB_REQUIRE_DOCS_TOOLS=1)")
        pytest.skip(why)


def _chromium():
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    try:
        import material  # noqa: F401
        import mkdocs  # noqa: F401
        import mkdocstrings  # noqa: F401
        have = True
    except ImportError:
        have = False
    _tool(have, "mkdocs, mkdocs-material or mkdocstrings is not installed (pip install '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=ROOT, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        for key in ("href", "src"):
            if attrs.get(key) and tag in ("a", "img", "link", "script"):
                self.links.append(attrs[key])


def _parse(html):
    p = _Links()
    p.feed(html)
    return p


def _rendered(page):
    """The page's DOM after Chromium ran its scripts."""
    chromium = _chromium()
    done = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--virtual-time-budget=3000", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-2000:]
    return done.stdout


def _target(page, href, site):
    """The file (and fragment) an internal link points at, or None for an external one."""
    url = urlsplit(href)
    if url.scheme in ("http", "https", "mailto", "data", "javascript") or url.netloc:
        return None
    if url.scheme == "file":
        path = Path(unquote(url.path))
    elif not url.path:
        path = page
    else:
        path = (page.parent / unquote(url.path)).resolve()
    if path.is_dir():
        path = path / "index.html"
    return path, url.fragment


def test_the_site_has_every_guide_and_the_figures(site):
    for page in ("index.html", "callbacks/index.html", "training-loop/index.html", "drop-in/index.html",
                 "schedules/index.html", "testing/index.html", "scaling/index.html", "checkpoints/index.html",
                 "migration/index.html", "api/fastcb/index.html"):
        assert (site / page).is_file(), page
    assert (site / "figures" / "annealing.png").read_bytes()[:4] == b"\x89PNG"
    assert 'src="../figures/annealing.png"' in (site / "callbacks" / "index.html").read_text()
    api = (site / "api" / "fastcb" / "index.html").read_text()
    assert 'id="fastcb.callback.Callback"' in api and "on_train_begin" in api


@pytest.mark.parametrize("page", ["index.html", "api/fastcb/index.html", "callbacks/index.html"])
def test_no_broken_internal_link_in_a_browser(site, page):
    _tool(_chromium(), "no chromium here (apt-get install chromium)")
    page = site / page
    dom = _parse(_rendered(page))
    assert len(dom.links) > 20
    broken = []
    for href in dom.links:
        target = _target(page, href, site)
        if target is None:
            continue
        path, fragment = target
        if not path.is_file():
            broken.append(href)
        elif fragment and path.suffix == ".html":
            ids = dom.ids if path == page else _parse(path.read_text(encoding="utf-8")).ids
            if unquote(fragment) not in ids:
                broken.append(href)
    assert not broken, broken
    assert not [h for h in dom.links if re.match(r"https?://fonts\.", h)], "no fonts from the network"
