"""Where labels come from: scripted teachers, VLM judges, LLM clients and the human queue."""

from robofeedback.feedback.sources import FeedbackSource, HumanQueue
from robofeedback.feedback.teachers import Teacher, make_teacher

__all__ = ["FeedbackSource", "HumanQueue", "Teacher", "make_teacher"]
