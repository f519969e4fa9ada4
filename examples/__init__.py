"""Examples of programs built on Cairn's events and API."""
