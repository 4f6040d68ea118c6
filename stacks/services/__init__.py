"""Our endpoints as ZenML services: one service class per backend, over one shared base (``endpoint``)."""
