"""The annotation app (Gradio) and the service behind it: people give preferences, rankings, corrections and
factor rankings in a browser, and training uses them as they arrive."""
