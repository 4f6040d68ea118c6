"""Custom ZenML stack-component flavors for the churn pipelines."""
