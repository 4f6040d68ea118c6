"""Plain logic of the churn pipeline: nothing here imports ZenML.

Steps, flavors and the inference server are thin wrappers around these modules,
and the unit tests call them directly.
"""
