"""The SageMaker stack, one module per job.

- :mod:`stacks.sagemaker.config`: the stack config (``configs/sagemaker_stack.example.yaml``), validated.
- :mod:`stacks.sagemaker.recipe`: our AWS flavors, the remote-execution components and the stack,
  registered from that config idempotently (``python run.py stack setup sagemaker --config FILE``).
- :mod:`stacks.sagemaker.run_options`: what a pipeline run needs from the active stack's labels
  (image, instance types); applied to every run on every stack.
- :mod:`stacks.sagemaker.cleanup`: plan, confirm and remove what the stack left
  (``python run.py cleanup`` / ``python run.py stack cleanup --config FILE``).

The commands are in ``cli/stack.py``; there is no second command line here.
"""
