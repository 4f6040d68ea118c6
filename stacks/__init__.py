"""Stack recipes (local, sagemaker) and our custom stack-component flavors."""
