"""``python run.py image build [--push]``: our image (docker/Dockerfile), tagged by content, pushed to ECR."""

from __future__ import annotations

import os

import click

from cli.common import fail


@click.group(help="Our image (docker/Dockerfile): SageMaker endpoints, AutoML pipelines, batch and steps run in it.")
def image() -> None:
    pass


@image.command(
    "build",
    help="Build the image, tagged with the content hash of requirements.lock and the code; "
    "--push also pushes it to the stack's ECR repository.",
)
@click.option(
    "--base-image", default=None, help="Base image with Python 3.11 (default: python:3.11-slim, or $CHURN_BASE_IMAGE)."
)
@click.option(
    "--push",
    is_flag=True,
    help="Push to the stack's ECR repository (image_uri, default <account>.dkr.ecr."
    "<region>.amazonaws.com/churn-mlops), creating it if missing.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="--push: the SageMaker stack config (default: the active stack's).",
)
def image_build(base_image: str | None, push: bool, config_path: str | None) -> None:
    from churn import image as churn_image

    try:
        reference = churn_image.build(
            base_image or os.environ.get("CHURN_BASE_IMAGE") or churn_image.DEFAULT_BASE_IMAGE
        )
        click.echo(f"Built {reference}")
        if push:
            from churn.aws.clients import AwsError
            from churn.config import ConfigError
            from stacks.sagemaker.config import stack_settings
            from stacks.sagemaker.recipe import settings_from_active_stack

            try:
                settings = stack_settings(config_path) if config_path else settings_from_active_stack()
            except (AwsError, ConfigError) as error:
                fail(str(error))
            pushed = churn_image.push(reference, settings.region, settings.aws_profile, settings.image_uri)
            click.echo(f"Pushed {pushed}")
            if settings.image_uri and churn_image.is_tagged(settings.image_uri) and settings.image_uri != pushed:
                click.echo(f"note: the stack config names {settings.image_uri}; drop its tag to use the pushed image")
    except churn_image.ImageError as error:
        fail(str(error))
