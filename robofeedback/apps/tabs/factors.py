"""The Factor ranking tab: order a task's reward factors by importance, most important first (HERON)."""

from __future__ import annotations

import gradio as gr

from robofeedback.apps.service import AnnotationError
from robofeedback.apps.shell import Shell, as_gradio_error, request_authorization


def _move(order_text: str, picked: str | None, step: int) -> tuple[dict, str]:
    """Move the picked factor ``step`` places in the order (clamped at the ends)."""
    order = [f.strip() for f in order_text.split(",") if f.strip()]
    if picked in order:
        i = order.index(picked)
        j = min(max(i + step, 0), len(order) - 1)
        order[i], order[j] = order[j], order[i]
    return gr.update(choices=order, value=picked), ", ".join(order)


def build_tab(shell: Shell) -> None:
    """The Factor ranking tab: its components, the task list (filled when the tab is selected), the move buttons and
    the ``/rank_factors`` endpoint."""
    service, name = shell.service, shell.name
    with gr.Tab("Factor ranking", id="factors") as factor_tab:
        gr.Markdown("Order the task's reward factors by importance, most important first (HERON).")
        factor_task = gr.Dropdown(label="Task", choices=[], elem_id="factor-task")
        with gr.Row():
            factor_pick = gr.Radio(label="Factor", choices=[], elem_id="factor-pick", scale=3)
            with gr.Column(scale=1):
                factor_up = gr.Button("Move up", elem_id="factor-up")
                factor_down = gr.Button("Move down", elem_id="factor-down")
        factor_order = gr.Textbox(label="Order, most important first", elem_id="factor-order")
        factor_costs = gr.CheckboxGroup(label="Costs (less is better)", choices=[], elem_id="factor-costs")
        factor_margins = gr.Textbox(
            label="Margins (optional, HERON's sigma per factor), e.g. progress=1, alive=0.5",
            elem_id="factor-margins",
        )
        factor_save = gr.Button("Save ranking", variant="primary", elem_id="factor-save")
        factor_message = gr.Markdown(elem_id="factor-message")

    def list_tasks():
        tasks = list(service.factor_tasks())
        return gr.update(choices=tasks, value=tasks[0] if tasks else None)

    def pick_task(task, annotator, request: gr.Request):
        factors = service.factor_tasks().get(task or "", [])
        order, earlier = factors, None
        if task:
            try:
                earlier = service.store.factor_ranking(
                    task, service.identify(annotator, request_authorization(request)).source
                )
            except AnnotationError:
                pass
            if earlier is not None:
                order = earlier.payload["order"] + [f for f in factors if f not in earlier.payload["order"]]
        return gr.update(choices=order, value=None), ", ".join(order), gr.update(choices=factors, value=[])

    factor_tab.select(list_tasks, None, factor_task, api_visibility="private")
    factor_task.change(
        pick_task, [factor_task, name], [factor_pick, factor_order, factor_costs], api_visibility="private"
    )
    factor_up.click(
        lambda o, p: _move(o, p, -1), [factor_order, factor_pick], [factor_pick, factor_order], api_visibility="private"
    )
    factor_down.click(
        lambda o, p: _move(o, p, 1), [factor_order, factor_pick], [factor_pick, factor_order], api_visibility="private"
    )

    @as_gradio_error
    def rank_factors(annotator, task, order_text, costs, margins, request: gr.Request):
        order = [f.strip() for f in (order_text or "").split(",") if f.strip()]
        if not task:
            raise AnnotationError("choose a task first")
        authorization = request_authorization(request)
        service.rank_factors(annotator, task, order, costs, margins, authorization)
        return f"Saved: {' > '.join(order)} for {task}, as {service.identify(annotator, authorization).source}."

    factor_save.click(
        rank_factors,
        [name, factor_task, factor_order, factor_costs, factor_margins],
        factor_message,
        api_name="rank_factors",
        preprocess=False,  # the task and cost lists differ per store: the service checks them, not the widgets
    )
