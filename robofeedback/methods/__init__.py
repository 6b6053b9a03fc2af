"""The reward methods, one package each: ``robofeedback.methods.<name>`` holds the method's model or loop, its
settings, its ``train`` flags and commands, its bench section, and exports one
:class:`~robofeedback.registry.Method` as ``METHOD``, which :mod:`robofeedback.registry` finds.

``robofeedback.methods.bench`` holds what the methods' bench sections share (training an entry, its label budget,
its prompts); a method imports no other method.
"""
