"""The Rankings tab: the best and the worst of K videos, or their full order."""

from __future__ import annotations

import gradio as gr

from robofeedback.apps.shell import (
    Shell,
    as_gradio_error,
    progress_text,
    request_authorization,
    said,
    task_text,
    videos_html,
)


def build_tab(shell: Shell) -> None:
    """The Rankings tab: its components, its loader and the ``/answer_ranking`` endpoint."""
    service, name, who = shell.service, shell.name, shell.who
    with gr.Tab("Rankings", id="rankings") as rank_tab:
        rank_query = gr.JSON(visible=False)
        rank_id = gr.Textbox(visible=False)
        rank_task = gr.Markdown(elem_id="rank-task")
        rank_videos = gr.HTML(elem_id="rank-videos")
        with gr.Row():
            rank_best = gr.Radio(label="Best", choices=[], elem_id="rank-best")
            rank_worst = gr.Radio(label="Worst", choices=[], elem_id="rank-worst")
            rank_order = gr.Textbox(label="Or a full order, best first (e.g. 3, 1, 2)", elem_id="rank-order", scale=2)
        with gr.Row():
            rank_note = gr.Textbox(label="Note (optional)", scale=4, elem_id="rank-note")
            rank_submit = gr.Button("Submit ranking", variant="primary", scale=1, elem_id="rank-submit")
            rank_refresh = gr.Button("Check for queries", scale=1, elem_id="rank-refresh")
        rank_progress = gr.Markdown(elem_id="rank-progress")

    def show_ranking(query):
        if not query:
            return (gr.skip(),) * 6
        n = len(query.get("segment_ids") or [])
        choices = [str(i) for i in range(1, n + 1)]
        return (
            task_text(query, "Which video does the task best, and which worst?"),
            videos_html(query, choices),
            gr.update(choices=choices, value=None),
            gr.update(choices=choices, value=None),
            "",
            progress_text(query["progress"]),
        )

    rank_shown = [rank_task, rank_videos, rank_best, rank_worst, rank_order, rank_progress]
    shell.loader("ranking", rank_query, rank_id, show_ranking, rank_shown, rank_refresh, rank_tab)

    @as_gradio_error
    def answer_ranking(annotator, query_id, best, worst, order, note, request: gr.Request):
        authorization = request_authorization(request)
        query = service.answer(annotator, query_id, note, authorization, best=best, worst=worst, order=order)
        return query, query.get("id") or "", said(query)

    rank_submit.click(
        answer_ranking,
        [name, rank_id, rank_best, rank_worst, rank_order, rank_note],
        [rank_query, rank_id, who],
        api_name="answer_ranking",
        trigger_mode="once",
        preprocess=False,  # K differs per query: the service checks the positions, not the radios' choices
    )
