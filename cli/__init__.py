"""The command groups ``run.py`` registers, one module per group.

``run.py`` holds the click group and the training command; each module here holds one group:
``ingest``, ``predict`` (and ``endpoints``), ``batch``, ``schedule``, ``stack`` (``stack setup``,
``stack cleanup``, ``stack iam`` and ``cleanup``), ``image``, ``dashboard``; ``summary`` prints the
end of a training run. The commands ask the stack's components for what they need through the
contracts in ``stacks/contracts.py``, never by a flavor's name.
"""
