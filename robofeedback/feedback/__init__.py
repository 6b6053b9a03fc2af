"""Where labels come from: scripted teachers, VLM judges, LLM clients and the human queue."""

from robofeedback.feedback.sources import HumanQueue
from robofeedback.feedback.teachers import Teacher, make_teacher
from robofeedback.protocols import FeedbackSource

__all__ = ["FeedbackSource", "HumanQueue", "Teacher", "make_teacher"]
