"""ZenML's own floor: a pipeline of seven no-op steps, run as a process on the active stack.

Seven steps like the training pipeline (source, preprocess, train, evaluate, gate, register,
deploy), each passing a small output to the next, no cache: what any seven-step run costs in
this venv (imports, client and store calls, step launches, artifact writes) before our code
does anything. bench/pipeline_overhead.py runs it beside ``run.py``.

Usage: python bench/zenml_floor.py   (ZENML_CONFIG_PATH selects the ZenML store and stack)
"""

from zenml import pipeline, step


@step(enable_cache=False)
def first() -> int:
    return 0


@step(enable_cache=False)
def next_step(value: int) -> int:
    return value + 1


@pipeline(enable_cache=False)
def zenml_floor() -> None:
    value = first()
    for index in range(6):
        value = next_step(value, id=f"step_{index + 2}")


if __name__ == "__main__":
    zenml_floor()
