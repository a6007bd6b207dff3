"""The browser SDKs real websites run, as a website runs them.

The README's two snippets (Segment's analytics.js and RudderStack's JS SDK
v3), pasted as written into pages served from another origin than the API,
load the SDKs' real npm builds (tests/browser/package-lock.json; the snippets'
jsDelivr URLs are answered from those files) in Debian's headless Chromium,
driven by Playwright, against the local stack. No request is faked: the
preflights, the settings fetches and the posts are the browser's own.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml

from tests.conftest import CONFIG_DIR, PROJECT_DIR
from tests.e2e.conftest import WRITE_KEY, running_stack

pytestmark = pytest.mark.slow

NODE_MODULES = PROJECT_DIR / "tests" / "browser" / "node_modules"
JSDELIVR = "https://cdn.jsdelivr.net/npm/"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def readme_snippets() -> dict[str, str]:
    """The two html blocks of the README's "Put it on your website", by SDK."""
    readme = (PROJECT_DIR / "README.md").read_text()
    section = readme.split("## Put it on your website", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```html\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 2, "the README should give one analytics.js and one RudderStack snippet"
    return {"segment": blocks[0], "rudderstack": blocks[1]}


class Website(ThreadingHTTPServer):
    """The company's site: any path is a page holding the snippet its `?sdk=` names."""

    def __init__(self, snippets: dict[str, str]) -> None:
        self.snippets = snippets
        super().__init__(("127.0.0.1", 0), _PageHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server_address[1]


class _PageHandler(BaseHTTPRequestHandler):
    server: Website

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path, _, query = self.path.partition("?")
        sdk = dict(part.split("=", 1) for part in query.split("&") if "=" in part).get("sdk", "")
        snippet = self.server.snippets.get(sdk)
        if snippet is None:
            self.send_error(404)
            return
        page = f"<!doctype html><html><head><title>{path}</title>{snippet}</head><body><h1>{path}</h1></body></html>"
        body = page.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve_npm(route: Any) -> None:
    """jsDelivr's npm URLs (`/npm/<package>@<version>/<file>`) from the locked install."""
    spec = route.request.url[len(JSDELIVR) :]
    match = re.match(r"^(@[^/]+/[^@/]+|[^@/]+)@([^/]+)/(.+)$", spec)
    assert match, f"not a jsDelivr npm URL: {route.request.url}"
    package, version, file = match.groups()
    root = NODE_MODULES / package
    installed = json.loads((root / "package.json").read_text())["version"]
    assert installed == version, f"the snippet loads {package}@{version}, the lockfile installs {installed}"
    route.fulfill(path=str(root / file), content_type="application/javascript")


@pytest.fixture(scope="module")
def website() -> Iterator[Website]:
    site = Website(
        {
            sdk: snippet.replace("NURTURE_URL", "{api}").replace("YOUR_WRITE_KEY", WRITE_KEY)
            for sdk, snippet in readme_snippets().items()
        }
    )
    yield site
    site.shutdown()


@pytest.fixture(scope="module")
def site_stack(website, tmp_path_factory):
    """The local stack whose website source allows the site's origin (and no other)."""
    config_dir = tmp_path_factory.mktemp("browser") / "config"
    shutil.copytree(CONFIG_DIR, config_dir)
    sources = yaml.safe_load((config_dir / "sources.yaml").read_text())
    sources["segment"]["website"]["allowed_origins"] = [f"http://localhost:{website.port}"]
    (config_dir / "sources.yaml").write_text(yaml.safe_dump(sources, sort_keys=False))
    with running_stack(config_dir=config_dir) as stack:
        website.snippets = {sdk: text.replace("{api}", stack.api_url) for sdk, text in website.snippets.items()}
        yield stack


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is not installed: `make test` installs it"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Visitor:
    """One person's browser: its own cookies and storage, and what went wrong in it."""

    def __init__(self, browser: Any, api_url: str) -> None:
        self.context = browser.new_context()
        self.context.route(JSDELIVR + "**", _serve_npm)
        self.api_url = api_url
        self.failures: list[str] = []
        self.answers: list[tuple[str, str, int]] = []
        self.page = self.context.new_page()
        self.page.on("requestfailed", self._failed)
        self.page.on("response", self._answered)
        self.page.on("pageerror", lambda error: self.failures.append(f"page error: {error}"))

    def _failed(self, request: Any) -> None:
        # A request cut short by leaving the page (net::ERR_ABORTED) is what a
        # real visitor's navigation does too: RudderStack keeps its queue in
        # storage and sends it again on the next page. A CORS refusal or a
        # network error is a failure.
        reason = request.failure or ""
        if "ERR_ABORTED" not in reason:
            self.failures.append(f"{request.method} {request.url}: {reason}")

    def _answered(self, response: Any) -> None:
        if response.url.startswith(self.api_url):
            self.answers.append((response.request.method, response.url[len(self.api_url) :], response.status))

    def visit(self, url: str) -> None:
        self.page.goto(url, wait_until="load")

    def run(self, script: str, argument: Any = None) -> Any:
        return self.page.evaluate(script, argument)

    def wait_for_posts(self, count: int, timeout: float = 20.0) -> list[tuple[str, str, int]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            posts = [answer for answer in self.answers if answer[0] == "POST"]
            if len(posts) >= count:
                return posts
            self.page.wait_for_timeout(100)
        raise AssertionError(f"expected {count} posts to the API, saw {self.answers}; failures: {self.failures}")

    def close(self) -> None:
        self.context.close()


PERSON = {
    "title": "VP Revenue Operations",
    "industry": "Fintech",
    "employees": 1200,
    "country": "United States",
}

# How each SDK is driven once its snippet has loaded, and how it names its anonymous id.
SDKS = {
    "segment": {
        "ready": "() => new Promise(resolve => window.analytics.ready(() => resolve(true)))",
        "anonymous_id": "() => window.analytics.user().anonymousId()",
        "global": "analytics",
    },
    "rudderstack": {
        "ready": "() => new Promise(resolve => window.rudderanalytics.ready(() => resolve(true)))",
        "anonymous_id": "() => window.rudderanalytics.getAnonymousId()",
        "global": "rudderanalytics",
    },
}


@pytest.mark.parametrize("sdk", sorted(SDKS))
def test_the_snippet_builds_a_scored_lead_counting_what_came_before_identify(sdk, website, site_stack, browser):
    email = f"dana.{sdk}@acme-fintech.com"
    driver = SDKS[sdk]
    site = f"http://localhost:{website.port}"
    visitor = Visitor(browser, site_stack.api_url)
    try:
        # Given a visitor who reads the pricing page, still anonymous
        visitor.visit(f"{site}/pricing?sdk={sdk}")
        visitor.run(driver["ready"])
        visitor.wait_for_posts(1)
        anonymous_id = visitor.run(driver["anonymous_id"])

        # When, on a later page load, they identify themselves and attend a webinar
        visitor.visit(f"{site}/webinars?sdk={sdk}")
        visitor.run(driver["ready"])
        assert visitor.run(driver["anonymous_id"]) == anonymous_id, "the SDK kept its anonymous id across pages"
        sdk_global = driver["global"]
        traits = {"email": email, **PERSON}
        visitor.run("([sdk, user, traits]) => window[sdk].identify(user, traits)", [sdk_global, f"user-{sdk}", traits])
        visitor.run(
            "([sdk, props]) => window[sdk].track('Webinar Attended', props)",
            [sdk_global, {"webinar_id": "pipeline-hygiene"}],
        )
        posts = visitor.wait_for_posts(4)
    finally:
        visitor.close()

    # Then every call got through the browser's CORS checks and was accepted
    assert visitor.failures == []
    assert all(status == 200 for _method, _path, status in posts), posts
    site_stack.wait_until_ingested()

    # And one lead holds it all: graded on fit, engaged, with the anonymous pricing view counted
    status, lead = site_stack.lead(email)
    assert status == 200, lead
    assert lead["user_id"] == f"user-{sdk}"
    assert anonymous_id in lead["anonymous_ids"]
    assert lead["fit"]["grade"] == "A"
    assert lead["engagement"]["score"] > 0
    rules = {row["rule"] for row in lead["engagement"]["explanation"]}
    assert {"pricing-page", "webinar-attended"} <= rules


def test_a_page_of_an_origin_not_allowed_reaches_nothing(website, site_stack, browser):
    # Given the same snippet on a page of another origin (127.0.0.1 is not the allowed localhost)
    visitor = Visitor(browser, site_stack.api_url)
    try:
        # When it loads and sends its page view
        visitor.visit(f"http://127.0.0.1:{website.port}/pricing?sdk=segment")
        visitor.page.wait_for_timeout(3000)
        anonymous_id = visitor.run("() => window.analytics.user ? window.analytics.user().anonymousId() : null")
    finally:
        visitor.close()

    # Then the browser blocked it and nothing of that visitor is stored
    assert not any(method == "POST" and status == 200 for method, _path, status in visitor.answers), visitor.answers
    assert visitor.failures, "the browser should have refused the cross-origin call"
    site_stack.wait_until_ingested()
    if anonymous_id:
        assert [item for item in site_stack.table_items() if anonymous_id in str(item)] == []
