"""The Corrections tab: nudge a safe-MPC robot's plan away from danger with the arrow buttons or a click."""

from __future__ import annotations

import gradio as gr
import imageio.v3 as iio

from robofeedback.apps.service import BUTTONS
from robofeedback.apps.shell import Shell, as_gradio_error, progress_text, request_authorization, said, task_text

ARROWS = {"left": "←", "right": "→", "up": "↑", "down": "↓", "raise": "⤒ up (z)", "lower": "⤓ down (z)"}


def build_tab(shell: Shell) -> None:
    """The Corrections tab: its components, its loader, the ``/correct_<button>`` endpoints and the image click."""
    service, name, who = shell.service, shell.name, shell.who
    with gr.Tab("Corrections", id="corrections") as corr_tab:
        corr_query = gr.JSON(visible=False)
        corr_id = gr.Textbox(visible=False)
        corr_task = gr.Markdown(elem_id="corr-task")
        with gr.Row():
            corr_image = gr.Image(
                label="The robot's plan (yellow); click to push it that way",
                interactive=False,
                height=420,
                elem_id="corr-image",
                scale=2,
            )
            with gr.Column(scale=1):
                corr_buttons = {
                    b: gr.Button(ARROWS[b], elem_id=f"corr-{b}", visible=b in ("left", "right")) for b in BUTTONS
                }
                corr_note = gr.Textbox(label="Note (optional)", elem_id="corr-note")
                corr_refresh = gr.Button("Check for queries", elem_id="corr-refresh")
        corr_progress = gr.Markdown(elem_id="corr-progress")

    def show_correction(query):
        if not query:
            return (gr.skip(),) * (3 + len(BUTTONS))
        n_u = len(next(iter((query.get("keys") or {}).values()), []))
        image = iio.imread(service.query_frame(query["id"])) if query.get("frame") else None
        state = ", ".join(f"{x:.2f}" for x in query.get("state") or [])
        text = task_text(query, f"Nudge the robot away from danger (state {state}, step {query.get('t', 0)}).")
        updates = [gr.update(visible=n_u in BUTTONS[b]) for b in BUTTONS]
        return (text or query.get("message", ""), image, *updates, progress_text(query["progress"]))

    corr_shown = [corr_task, corr_image, *corr_buttons.values(), corr_progress]
    shell.loader("correction", corr_query, corr_id, show_correction, corr_shown, corr_refresh, corr_tab)

    for button_name, button in corr_buttons.items():

        @as_gradio_error
        def answer_correction(annotator, query_id, note, request: gr.Request, button_name=button_name):
            query = service.answer(annotator, query_id, note, request_authorization(request), button=button_name)
            return query, query.get("id") or "", said(query, "Sent. ")

        button.click(
            answer_correction,
            [name, corr_id, corr_note],
            [corr_query, corr_id, who],
            api_name=f"correct_{button_name}",
            trigger_mode="once",
        )

    @as_gradio_error
    def click_correction(annotator, query_id, note, evt: gr.SelectData, request: gr.Request):
        query = service.answer(annotator, query_id, note, request_authorization(request), click=list(evt.index))
        return query, query.get("id") or "", said(query, "Sent. ")

    corr_image.select(
        click_correction, [name, corr_id, corr_note], [corr_query, corr_id, who], api_visibility="private"
    )
