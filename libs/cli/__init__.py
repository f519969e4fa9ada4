"""`cairn`: the command line (``python -m libs.cli``)."""
