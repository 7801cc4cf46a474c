"""A plugin module that fails on import, as a plugin built against another version might."""

raise RuntimeError("this plugin is broken on purpose")
