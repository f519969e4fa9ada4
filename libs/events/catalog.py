"""Imports every aggregate module so that the whole catalog is registered."""
from libs.events import evaluation, lifecycle, models, security, training, versions  # noqa: F401
from libs.events.base import all_event_classes, event_class

__all__ = ["all_event_classes", "event_class"]
