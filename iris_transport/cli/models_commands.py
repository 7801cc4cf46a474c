"""Commands that read IRIS messages: ``validate`` and ``schema``."""

COMMANDS: list = []
