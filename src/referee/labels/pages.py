"""The labelling pages' handlers: one method per route of ``referee.labels.app``, over one store.

``LabelPages`` holds what the routes share (the store's items and critiques, the token, the throttle, the
templates) and the session helpers: the CSRF token every POST must carry, who is signed in (a session
signed in under another token is signed out), the token check with its lock-out (``guard.Throttle``), and
which items an annotator sees with a critique (``assignment``). The app wires these methods to routes.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time

from fastapi import Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from referee.labels.assignment import shown_order, with_critique
from referee.labels.critique import critique_view, question_text, segments
from referee.labels.guard import Throttle
from referee.labels.items import STEP_LABELS, LabelItem
from referee.labels.store import LabelStore

NAME = re.compile(r"^[\w .@-]{1,40}$")
CONFIDENCE = {"1": 1, "2": 2, "3": 3}  # unsure, fairly sure, sure


class LabelPages:
    """The pages over ``store``; ``token``: what signing in needs besides a name (None: nothing)."""

    def __init__(self, store: LabelStore, templates: Jinja2Templates, *, seed: int, critique_share: float,
                 token: str | None, throttle: Throttle):
        self.store, self.templates = store, templates
        self.seed, self.critique_share, self.token, self.throttle = seed, critique_share, token, throttle
        self.items = store.items()
        self.position = {item.id: k for k, item in enumerate(self.items)}
        self.critiques = store.critiques()
        self.mode = self.items[0].mode
        # a session signed in under another token (the server restarted with a new one) is signed out
        self.token_mark = hashlib.sha256(token.encode()).hexdigest()[:16] if token is not None else None
        self.assigned: dict[str, set[str]] = {}

    # ---- session helpers ------------------------------------------------------------------------------
    def csrf(self, request: Request) -> str:
        if "csrf" not in request.session:
            request.session["csrf"] = secrets.token_urlsafe(32)
        return request.session["csrf"]

    def check_post(self, request: Request, sent: str) -> None:
        expected = request.session.get("csrf")
        if not expected or not secrets.compare_digest(expected, sent or ""):
            raise HTTPException(403, "missing or wrong form token: reload the page")
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            raise HTTPException(403, "request from another site")

    def annotator(self, request: Request) -> str | None:
        name = request.session.get("annotator")
        if name and request.session.get("token") != self.token_mark:
            return None
        return name

    def token_refusal(self, request: Request, given: str) -> HTMLResponse | None:
        """None for the right token; else the sign-in page again. A wrong token counts against the client's
        address, and while the address is locked out not even the right one is compared: guessing gains
        nothing, and the page says when to try again."""
        who = request.client.host if request.client else "?"
        if self.throttle.wait(who) > 0:
            seconds = self.throttle.retry_after(who)
            refused = self.page(request, "login.html", status=429, need_token=True,
                                error=f"Too many wrong tokens: try again in {seconds} s.")
            refused.headers["Retry-After"] = str(seconds)
            return refused
        if secrets.compare_digest(self.token.encode(), given.encode()):
            self.throttle.succeeded(who)
            return None
        self.throttle.failed(who)
        return self.page(request, "login.html", status=403, need_token=True, error="Wrong token.")

    def page(self, request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
        who = self.annotator(request)
        done = len(self.store.labels(who)) if who else 0
        return self.templates.TemplateResponse(request, name, {
            "csrf": self.csrf(request), "annotator": who, "done": done, "total": len(self.items), "mode": self.mode,
            **context}, status_code=status)

    def assisted(self, who: str) -> set[str]:
        """The items this annotator sees with the critique (none when there are no critiques)."""
        if who not in self.assigned:
            ids = [i.id for i in self.items]
            self.assigned[who] = with_critique(self.seed, who, ids, self.critique_share) if self.critiques else set()
        return self.assigned[who]

    def order(self, who: str, item: LabelItem) -> str | None:
        """The order the annotator sees a pair's answers in ("AB" or "BA"); None for steps."""
        return shown_order(self.seed, who, item.id) if self.mode == "pairs" else None

    # ---- pages ----------------------------------------------------------------------------------------
    def favicon(self):
        return Response(status_code=204)

    def home(self, request: Request):
        if self.annotator(request):
            return go("/next")
        return self.page(request, "login.html", need_token=self.token is not None, error=None)

    def login(self, request: Request, name: str = Form(""), given_token: str = Form("", alias="token"),
              form_csrf: str = Form("", alias="csrf")):
        self.check_post(request, form_csrf)
        name = name.strip()
        if not NAME.match(name):
            return self.page(request, "login.html", status=400, need_token=self.token is not None,
                             error="A name of 1 to 40 letters, digits, spaces, dots, @ or dashes.")
        refusal = self.token_refusal(request, given_token) if self.token is not None else None
        if refusal is not None:
            return refusal
        request.session.update(annotator=name, token=self.token_mark, shown={})
        return go("/next")

    def logout(self, request: Request, form_csrf: str = Form("", alias="csrf")):
        self.check_post(request, form_csrf)
        request.session.clear()
        return go("/")

    def next_item(self, request: Request):
        who = self.annotator(request)
        if not who:
            return go("/")
        found = self.store.next_item(who)
        return go("/done" if found is None else f"/item/{self.position[found]}")

    def done(self, request: Request):
        if not self.annotator(request):
            return go("/")
        return self.page(request, "done.html")

    def show(self, request: Request, k: int):
        who = self.annotator(request)
        if not who:
            return go("/")
        item = _item(self.items, k)
        shown = request.session.setdefault("shown", {})
        if str(k) not in shown:
            shown[str(k)] = time.time()
            # the cookie holds this; items opened and left unanswered must not grow it past a browser's 4 kB
            request.session["shown"] = dict(sorted(shown.items(), key=lambda kv: kv[1])[-20:])
        view = item_view(item, self.critiques, order=self.order(who, item), critique=item.id in self.assisted(who))
        previous = self.store.labels(who).get(item.id)
        return self.page(request, f"{self.mode}.html", k=k, item=view, previous=_previous(previous, self.mode))

    async def answer(self, request: Request, k: int):
        form = await request.form()
        field = lambda name, default="": str(form.get(name, default))  # noqa: E731
        self.check_post(request, field("csrf"))
        who = self.annotator(request)
        if not who:
            return go("/")
        item = _item(self.items, k)
        shown = request.session.get("shown", {})
        shown_at = shown.pop(str(k), time.time())
        order = self.order(who, item)
        common = dict(item=item.id, annotator=who, critique_shown=item.id in self.assisted(who), shown_at=shown_at,
                      shown_order=order)
        action = field("action", "label")
        if action == "skip":
            self.store.record(kind="skip", **common)
        elif action == "label":
            self.store.record(kind="label", **self._label(field, item, order), **common)
        else:
            raise HTTPException(400, f"unknown action {action!r}")
        request.session["shown"] = shown
        return go("/next")

    def _label(self, field, item: LabelItem, order: str | None) -> dict:
        """The label, confidence and reason the form gives for ``item``; a bad one is a 400."""
        if self.mode == "pairs":
            label = _pair_label(field("choice"), order)
        else:
            label = _step_labels([field(f"step-{i}") for i in range(len(item.answers))])
        confidence = field("confidence", "2")
        if confidence not in CONFIDENCE:
            raise HTTPException(400, "confidence should be 1, 2 or 3")
        return {"label": label, "confidence": CONFIDENCE[confidence], "reason": field("reason")[:4000]}

    def undo(self, request: Request, form_csrf: str = Form("", alias="csrf")):
        self.check_post(request, form_csrf)
        who = self.annotator(request)
        if not who:
            return go("/")
        item = self.store.undo(who)
        return go("/next" if item is None else f"/item/{self.position[item]}")

    def refused(self, request: Request, exc: HTTPException) -> Response:
        return self.page(request, "error.html", status=exc.status_code, message=exc.detail)


def go(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


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
