"""ZenML steps, one per file. Each is a thin wrapper around plain functions in ``churn``.

Importing this package (every process that runs one of our steps does) redacts every log
record the process writes and makes input/output failures of a step send its failure alert.
"""

from churn.redaction import install_log_redaction
from steps.alert import alert_on_input_output_failures

install_log_redaction()
alert_on_input_output_failures()
