"""The labelling page: FastAPI with Jinja2 templates (``templates/label/``), one page per item.

Pages: ``/`` (sign in by name, and with the token when the server needs one), ``/next`` (the annotator's
next item), ``/item/N`` (the N-th item: GET shows it, POST labels or skips it), ``/undo``, ``/done``.
What a page shows (answer order, critique or not) comes from ``assignment``; the server keeps when it
first sent an item to an annotator in the signed session cookie, so seconds per label are the server's.

Safety. Answers, questions and critiques are untrusted: Jinja2 escapes everything (autoescape on,
nothing marked safe), and the Content-Security-Policy allows only this server's own script and style
file, so even an escaping mistake could not run a script. Every POST carries the session's CSRF token
and, when the browser sends an Origin, it must be this server. The store is fixed when the app is made;
no request names a file. With a token, nothing but the sign-in page is served before it is given, and an
address that keeps giving wrong tokens is locked out for longer each time (``guard.Throttle``). Before
any of that, ``guard.Guard`` refuses a Host header the page was not started under (a DNS-rebinding page
would otherwise be same-origin with it) and a body over 1 MiB, before it is parsed.

The handlers are ``pages.LabelPages``' methods; this module wires them to routes behind the middleware.
"""

from __future__ import annotations

from importlib import resources

import jinja2
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.sessions import SessionMiddleware

from referee.labels.guard import MAX_BODY, Guard, Hosts, Throttle
from referee.labels.pages import LabelPages, item_view  # noqa: F401 - item_view is imported from here too
from referee.labels.store import LabelStore

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # with no-referrer, Chromium sends "Origin: null" on the page's own forms
    "Cache-Control": "no-store",
}


def create_app(store: LabelStore, seed: int = 0, critique_share: float = 0.5, token: str | None = None, *,
               hosts: Hosts | None = None, max_body: int = MAX_BODY, throttle: Throttle | None = None) -> FastAPI:
    """The page over ``store``. ``hosts``: the Host names it answers (default: loopback ones only)."""
    folder = resources.files("referee") / "templates" / "label"
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    pages = LabelPages(store, Jinja2Templates(env=env), seed=seed, critique_share=critique_share, token=token,
                       throttle=throttle or Throttle())

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(SessionMiddleware, secret_key=store.secret(), session_cookie="referee_label",
                       same_site="strict", https_only=False, max_age=30 * 24 * 3600)
    app.mount("/static", StaticFiles(directory=str(folder / "static")), name="static")
    app.middleware("http")(security_headers)
    app.add_middleware(Guard, hosts=hosts or Hosts.bound(), max_body=max_body)  # added last: runs first
    add_routes(app, pages)
    app.add_exception_handler(HTTPException, pages.refused)
    return app


async def security_headers(request: Request, call_next):
    response = await call_next(request)
    response.headers.update(SECURITY_HEADERS)
    return response


def add_routes(app: FastAPI, pages: LabelPages) -> None:
    """Each page's route (module doc)."""
    app.get("/favicon.ico")(pages.favicon)
    app.get("/", response_class=HTMLResponse)(pages.home)
    app.post("/login")(pages.login)
    app.post("/logout")(pages.logout)
    app.get("/next")(pages.next_item)
    app.get("/done", response_class=HTMLResponse)(pages.done)
    app.get("/item/{k}", response_class=HTMLResponse)(pages.show)
    app.post("/item/{k}")(pages.answer)
    app.post("/undo")(pages.undo)
