"""The annotation app's tabs, one module each, built on the shared shell (:mod:`robofeedback.apps.shell`)."""
