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
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from importlib import resources

import jinja2
from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.sessions import SessionMiddleware

from referee.labels.assignment import shown_order, with_critique
from referee.labels.critique import critique_view, question_text, segments
from referee.labels.guard import MAX_BODY, Guard, Hosts, Throttle
from referee.labels.items import STEP_LABELS, LabelItem
from referee.labels.store import LabelStore

NAME = re.compile(r"^[\w .@-]{1,40}$")
CONFIDENCE = {"1": 1, "2": 2, "3": 3}  # unsure, fairly sure, sure
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
    throttle = throttle or Throttle()
    items = store.items()
    position = {item.id: k for k, item in enumerate(items)}
    critiques = store.critiques()
    mode = items[0].mode
    folder = resources.files("referee") / "templates" / "label"
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    pages = Jinja2Templates(env=env)

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(SessionMiddleware, secret_key=store.secret(), session_cookie="referee_label",
                       same_site="strict", https_only=False, max_age=30 * 24 * 3600)
    app.mount("/static", StaticFiles(directory=str(folder / "static")), name="static")

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    app.add_middleware(Guard, hosts=hosts or Hosts.bound(), max_body=max_body)  # added last: runs first

    # ---- helpers ------------------------------------------------------------------------------------
    def csrf(request: Request) -> str:
        if "csrf" not in request.session:
            request.session["csrf"] = secrets.token_urlsafe(32)
        return request.session["csrf"]

    def check_post(request: Request, sent: str) -> None:
        expected = request.session.get("csrf")
        if not expected or not secrets.compare_digest(expected, sent or ""):
            raise HTTPException(403, "missing or wrong form token: reload the page")
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            raise HTTPException(403, "request from another site")

    # a session signed in under another token (the server restarted with a new one) is signed out
    token_mark = hashlib.sha256(token.encode()).hexdigest()[:16] if token is not None else None

    def annotator(request: Request) -> str | None:
        name = request.session.get("annotator")
        if name and request.session.get("token") != token_mark:
            return None
        return name

    def token_refusal(request: Request, given: str) -> HTMLResponse | None:
        """None for the right token; else the sign-in page again. A wrong token counts against the client's
        address, and while the address is locked out not even the right one is compared: guessing gains
        nothing, and the page says when to try again."""
        who = request.client.host if request.client else "?"
        if throttle.wait(who) > 0:
            seconds = throttle.retry_after(who)
            refused = page(request, "login.html", status=429, need_token=True,
                           error=f"Too many wrong tokens: try again in {seconds} s.")
            refused.headers["Retry-After"] = str(seconds)
            return refused
        if secrets.compare_digest(token.encode(), given.encode()):
            throttle.succeeded(who)
            return None
        throttle.failed(who)
        return page(request, "login.html", status=403, need_token=True, error="Wrong token.")

    def page(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
        who = annotator(request)
        done = len(store.labels(who)) if who else 0
        return pages.TemplateResponse(request, name, {"csrf": csrf(request), "annotator": who, "done": done,
                                                      "total": len(items), "mode": mode, **context},
                                      status_code=status)

    def go(url: str) -> RedirectResponse:
        return RedirectResponse(url, status_code=303)

    assigned: dict[str, set[str]] = {}

    def assisted(who: str) -> set[str]:
        """The items this annotator sees with the critique (none when there are no critiques)."""
        if who not in assigned:
            assigned[who] = with_critique(seed, who, [i.id for i in items], critique_share) if critiques else set()
        return assigned[who]

    # ---- pages --------------------------------------------------------------------------------------
    @app.get("/favicon.ico")
    def favicon():
        return Response(status_code=204)

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request):
        if annotator(request):
            return go("/next")
        return page(request, "login.html", need_token=token is not None, error=None)

    @app.post("/login")
    def login(request: Request, name: str = Form(""), given_token: str = Form("", alias="token"),
              form_csrf: str = Form("", alias="csrf")):
        check_post(request, form_csrf)
        name = name.strip()
        if not NAME.match(name):
            return page(request, "login.html", status=400, need_token=token is not None,
                        error="A name of 1 to 40 letters, digits, spaces, dots, @ or dashes.")
        refusal = token_refusal(request, given_token) if token is not None else None
        if refusal is not None:
            return refusal
        request.session.update(annotator=name, token=token_mark, shown={})
        return go("/next")

    @app.post("/logout")
    def logout(request: Request, form_csrf: str = Form("", alias="csrf")):
        check_post(request, form_csrf)
        request.session.clear()
        return go("/")

    @app.get("/next")
    def next_item(request: Request):
        who = annotator(request)
        if not who:
            return go("/")
        found = store.next_item(who)
        return go("/done" if found is None else f"/item/{position[found]}")

    @app.get("/done", response_class=HTMLResponse)
    def done(request: Request):
        if not annotator(request):
            return go("/")
        return page(request, "done.html")

    @app.get("/item/{k}", response_class=HTMLResponse)
    def show(request: Request, k: int):
        who = annotator(request)
        if not who:
            return go("/")
        item = _item(items, k)
        shown = request.session.setdefault("shown", {})
        if str(k) not in shown:
            shown[str(k)] = time.time()
            # the cookie holds this; items opened and left unanswered must not grow it past a browser's 4 kB
            request.session["shown"] = dict(sorted(shown.items(), key=lambda kv: kv[1])[-20:])
        view = item_view(item, critiques, order=shown_order(seed, who, item.id) if mode == "pairs" else None,
                         critique=item.id in assisted(who))
        previous = store.labels(who).get(item.id)
        return page(request, f"{mode}.html", k=k, item=view, previous=_previous(previous, mode))

    @app.post("/item/{k}")
    async def answer(request: Request, k: int):
        form = await request.form()
        field = lambda name, default="": str(form.get(name, default))  # noqa: E731
        check_post(request, field("csrf"))
        who = annotator(request)
        if not who:
            return go("/")
        item = _item(items, k)
        shown = request.session.get("shown", {})
        shown_at = shown.pop(str(k), time.time())
        order = shown_order(seed, who, item.id) if mode == "pairs" else None
        common = dict(item=item.id, annotator=who, critique_shown=item.id in assisted(who), shown_at=shown_at,
                      shown_order=order)
        action = field("action", "label")
        if action == "skip":
            store.record(kind="skip", **common)
        elif action == "label":
            if mode == "pairs":
                label = _pair_label(field("choice"), order)
            else:
                label = _step_labels([field(f"step-{i}") for i in range(len(item.answers))])
            confidence = field("confidence", "2")
            if confidence not in CONFIDENCE:
                raise HTTPException(400, "confidence should be 1, 2 or 3")
            store.record(kind="label", label=label, confidence=CONFIDENCE[confidence],
                         reason=field("reason")[:4000], **common)
        else:
            raise HTTPException(400, f"unknown action {action!r}")
        request.session["shown"] = shown
        return go("/next")

    @app.post("/undo")
    def undo(request: Request, form_csrf: str = Form("", alias="csrf")):
        check_post(request, form_csrf)
        who = annotator(request)
        if not who:
            return go("/")
        item = store.undo(who)
        return go("/next" if item is None else f"/item/{position[item]}")

    @app.exception_handler(HTTPException)
    def refused(request: Request, exc: HTTPException) -> Response:
        return page(request, "error.html", status=exc.status_code, message=exc.detail)

    return app


def _item(items: list[LabelItem], k: int) -> LabelItem:
    if not 0 <= k < len(items):
        raise HTTPException(404, f"no item {k}: items are numbered 0 to {len(items) - 1}")
    return items[k]


def _pair_label(choice: str, order: str) -> str:
    """The page's choice (1 = left, 2 = right, 3 = tie) as a verdict about the file's answers."""
    if choice == "3":
        return "tie"
    if choice not in ("1", "2"):
        raise HTTPException(400, "choose 1 (left), 2 (right) or 3 (tie)")
    return order[int(choice) - 1]


def _step_labels(labels: list[str]) -> list[str]:
    missing = [i + 1 for i, v in enumerate(labels) if v not in STEP_LABELS]
    if missing:
        raise HTTPException(400, f"label every step (+, 0 or -); not labelled: step {', '.join(map(str, missing))}")
    return labels


def _previous(row: dict | None, mode: str) -> dict | None:
    """The annotator's current label of the item (after an undo, none), to show it preselected."""
    if row is None:
        return None
    if mode == "pairs":
        side = {"tie": "3", row["shown_order"][0]: "1", row["shown_order"][1]: "2"}[row["label"]]
        return {"choice": side, "confidence": str(row["confidence"]), "reason": row["reason"] or ""}
    return {"steps": json.loads(row["label"]), "confidence": str(row["confidence"]), "reason": row["reason"] or ""}


def item_view(item: LabelItem, critiques: dict, order: str | None, critique: bool) -> dict:
    """What the template shows of an item: text in runs, the critique's quotes marked in the answers."""
    view = {"id": item.id, "question": [{"role": m["role"], "content": m["content"]} for m in item.question],
            "question_text": question_text(item.question), "critique_shown": critique}
    if item.mode == "pairs":
        sides = []
        for index in (0 if order == "AB" else 1, 1 if order == "AB" else 0):
            answer = item.answers[index]
            found = critiques.get((item.id, index)) if critique else None
            cv = critique_view(found, [answer]) if found else None
            sides.append({"runs": segments(answer, cv["found"] if cv else []), "critique": cv})
        view["sides"] = sides
        return view
    found = critiques.get((item.id, 0)) if critique else None
    cv = critique_view(found, item.answers) if found else None
    view["steps"] = [segments(step, cv["found"] if cv else []) for step in item.answers]
    view["critique"] = cv
    return view
