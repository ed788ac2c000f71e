"""Serializers: formats, codecs and offloads composed into SDK ``SerDes`` pipelines."""

from durable_ext.serializers.pipeline import Pipeline, build_pipeline, serdes
from durable_ext.serializers.types import TypeRegistry

__all__ = ["Pipeline", "TypeRegistry", "build_pipeline", "serdes"]
