"""The Preferences tab: which of two clips does the task better (keys 1, 2, 3 and 0), with undo."""

from __future__ import annotations

import gradio as gr

from robofeedback.apps.service import PREFERENCE_CHOICES
from robofeedback.apps.shell import (
    Shell,
    as_gradio_error,
    progress_text,
    request_authorization,
    said,
    task_text,
    videos_html,
)

SHORTCUTS = {"a": "1", "b": "2", "equal": "3", "skip": "0"}


def build_tab(shell: Shell) -> None:
    """The Preferences tab: its components, its loader (also behind the Start button and the name box), the
    ``/answer_preference_<choice>`` endpoints and ``/undo``."""
    service, name, who = shell.service, shell.name, shell.who
    with gr.Tab("Preferences", id="preferences") as pref_tab:
        pref_query = gr.JSON(visible=False)
        pref_id = gr.Textbox(visible=False)
        pref_task = gr.Markdown(elem_id="pref-task")
        pref_videos = gr.HTML(elem_id="pref-videos")
        with gr.Row():
            pref_buttons = {
                value: gr.Button(f"{label} ({SHORTCUTS[value]})", elem_id=f"pref-{value}")
                for value, label in PREFERENCE_CHOICES.items()
            }
        with gr.Row():
            pref_note = gr.Textbox(label="Note (optional)", scale=4, elem_id="pref-note")
            pref_undo = gr.Button("Undo last label", scale=1, elem_id="pref-undo")
            pref_refresh = gr.Button("Check for queries", scale=1, elem_id="pref-refresh")
        pref_progress = gr.Markdown(elem_id="pref-progress")

    def show_preference(query):
        if not query:
            return gr.skip(), gr.skip(), gr.skip()
        return (
            task_text(query, "Which clip does the task better?"),
            videos_html(query, ["Left (1)", "Right (2)"]),
            progress_text(query["progress"]),
        )

    pref_shown = [pref_task, pref_videos, pref_progress]
    next_preference = shell.loader(
        "preference", pref_query, pref_id, show_preference, pref_shown, pref_refresh, pref_tab
    )
    for event in (shell.start.click, name.submit):
        event(next_preference, [name], [pref_query, pref_id, who], api_visibility="private")

    for value, button in pref_buttons.items():

        @as_gradio_error
        def answer_preference(annotator, query_id, note, request: gr.Request, value=value):
            query = service.answer(annotator, query_id, note, request_authorization(request), value=value)
            return query, query.get("id") or "", said(query), ""

        button.click(
            answer_preference,
            [name, pref_id, pref_note],
            [pref_query, pref_id, who, pref_note],
            api_name=f"answer_preference_{value}",
            trigger_mode="once",
        )

    @as_gradio_error
    def undo(annotator, request: gr.Request):
        query = service.undo(annotator, request_authorization(request))
        return query, query.get("id") or "", said(query, "Took back your last label: here is its query again. ")

    pref_undo.click(undo, [name], [pref_query, pref_id, who], api_name="undo")
