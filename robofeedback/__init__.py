"""robofeedback: learn robot rewards and safety constraints from human and AI feedback."""

__version__ = "0.1.0"
