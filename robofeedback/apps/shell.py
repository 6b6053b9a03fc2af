"""The annotation app's shell: the sign-in part, the query loader and the helpers every tab shares."""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from robofeedback.apps.service import AnnotationError, AnnotationService

log = logging.getLogger("robofeedback.app")


def as_gradio_error(fn: Callable) -> Callable:
    """Run ``fn``; a refused request becomes a Gradio error (a message in the browser, an error to API callers)."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except AnnotationError as e:
            log.info("refused %s: %s", fn.__name__, e)  # one line: a refused request is no error of the app's
            raise gr.Error(str(e), print_exception=False) from None

    return wrapped


def request_authorization(request: gr.Request | None) -> str | None:
    """The request's ``Authorization`` header (the app's middleware has checked it), if any."""
    return request.headers.get("authorization") if request is not None else None


def progress_text(progress: dict[str, Any]) -> str:
    """An annotator's progress in one line of Markdown: labels, pace, the run's budget and the agreements."""
    parts = [f"**{progress['source']}**: {progress['labels']} labels, {progress['per_minute']:g} per minute"]
    if progress.get("run"):
        budget = progress.get("budget")
        parts.append(
            f"run `{progress['run']}`: {progress['answered']}" + (f" / {budget}" if budget else "") + " labels"
        )
    if "reward_agreement" in progress:
        parts.append(f"the learned reward agrees with you on {progress['reward_agreement']:.0%} of your labels")
    if "annotator_agreement" in progress:
        parts.append(f"annotators agree on {progress['annotator_agreement']:.0%} of doubly-labelled pairs")
    return " · ".join(parts)


def videos_html(query: dict[str, Any], captions: list[str]) -> str:
    """A query's segment videos side by side, captioned (the query's message when it has none)."""
    if not query.get("id"):
        return f"<p>{html.escape(query.get('message', ''))}</p>"
    missing = set(query.get("missing_videos") or [])
    figures = []
    for url, segment, caption in zip(query["videos"], query["segment_ids"], captions, strict=True):
        if segment in missing:
            body = f"<p>(segment {html.escape(segment)} has no video file)</p>"
        else:
            body = f'<video src="{url}?q={query["id"]}" autoplay loop muted playsinline></video>'
        figures.append(f"<figure>{body}<figcaption>{html.escape(caption)}</figcaption></figure>")
    columns = min(len(figures), 3)
    return f'<div class="rf-videos" style="grid-template-columns: repeat({columns}, 1fr)">{"".join(figures)}</div>'


def task_text(query: dict[str, Any], question: str) -> str:
    """A query's task and the question asked about it (Markdown; empty without a query)."""
    if not query.get("id"):
        return ""
    return f"### Task: {html.escape(str(query['task']))}\n{question}"


def said(query: dict[str, Any], extra: str = "") -> str:
    """The line under the name box after a request: who is labelling, ``extra``, and the query's message."""
    return f"Labelling as **{query['progress']['source']}**. {extra}{query.get('message', '')}"


@dataclass(frozen=True)
class Shell:
    """What the tabs share: the service, the app's blocks, the name box and Start button, the line that says who
    labels, the timer that polls for queries, and which query tab is in view."""

    service: AnnotationService
    blocks: gr.Blocks
    name: gr.Textbox
    start: gr.Button
    who: gr.Markdown
    poll_timer: gr.Timer
    active_tab: gr.State

    def loader(
        self,
        kind: str,
        query_box: gr.JSON,
        id_box: gr.Textbox,
        show: Callable,
        shown: list[gr.components.Component],
        refresh: gr.Button,
        tab: gr.Tab,
    ) -> Callable:
        """Wire a tab's loading: its refresh button (the public ``/next_<kind>`` endpoint), selecting the tab,
        and the timer, which looks for a new query while the tab shows none (or one that has closed). Returns the
        ``next_<kind>`` handler."""
        service, name, active_tab, poll_timer = self.service, self.name, self.active_tab, self.poll_timer

        @as_gradio_error
        def next_query(annotator, request: gr.Request):
            query = service.next(annotator, kind, request_authorization(request))
            return query, query.get("id") or "", said(query)

        next_query.__name__ = f"next_{kind}"

        def poll(annotator, query_id, active, request: gr.Request):
            skip = gr.skip(), gr.skip(), gr.skip()
            authorization = request_authorization(request)
            if active != kind or not ((annotator or "").strip() or authorization):  # the tab in view asks
                return skip
            if query_id and service.store.get_query(query_id).status == "pending":
                return skip
            try:
                query = service.next(annotator, kind, authorization)
            except AnnotationError:
                return skip
            if not query.get("id") and not query_id:
                return skip
            return query, query.get("id") or "", said(query)

        outputs = [query_box, id_box, self.who]
        refresh.click(next_query, [name], outputs, api_name=f"next_{kind}")
        tab.select(lambda: kind, None, active_tab, api_visibility="private").then(
            poll, [name, id_box, active_tab], outputs, api_visibility="private", show_progress="hidden"
        )
        poll_timer.tick(poll, [name, id_box, active_tab], outputs, api_visibility="private", show_progress="hidden")
        query_box.change(show, [query_box], shown, api_visibility="private", show_progress="hidden")
        return next_query


def build_shell(blocks: gr.Blocks, service: AnnotationService) -> Shell:
    """The app's header and sign-in part, in ``blocks``: a logged-in annotator's name fills the name box."""
    gr.Markdown(
        "## robofeedback annotation\nEnter your name, then answer the queries. Keys: **1** left, **2** right, "
        "**3** equal, **0** can't tell; arrow keys nudge the robot in the corrections tab."
    )
    with gr.Row():
        name = gr.Textbox(label="Your name", placeholder="e.g. alice", scale=3, elem_id="annotator-name")
        start = gr.Button("Start", variant="primary", scale=1, elem_id="start")
    who = gr.Markdown(elem_id="who")
    poll_timer = gr.Timer(1.0)  # the tab in view looks for a new query while it shows none
    active_tab = gr.State("preference")

    def signed_in(request: gr.Request):
        """A logged-in annotator's name fills the name box, which they cannot change; an open app says so."""
        source = service.authenticate(request_authorization(request))
        if source is not None:
            return gr.update(value=source.removeprefix("human:"), interactive=False), f"Logged in as **{source}**."
        if service.open:
            return gr.skip(), "This app runs open: the name you type is recorded as given, unchecked."
        return gr.skip(), "Log in to label."

    blocks.load(signed_in, None, [name, who], api_visibility="private")
    return Shell(service, blocks, name, start, who, poll_timer, active_tab)
