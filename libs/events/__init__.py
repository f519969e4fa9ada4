"""The event catalog: every event declared once, as a pydantic model, with its topic.

``libs.events.envelope`` carries them over Kafka (CloudEvents attributes as ``ce_*`` headers, JSON body).
Import the aggregate modules to register their events: ``libs.events.catalog`` does all of them.
"""
