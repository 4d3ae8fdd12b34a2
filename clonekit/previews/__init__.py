"""Use cases that work on an existing preview: its code (``--build``/``--image``, ``refresh --code``),
deploy hooks, and the developer's doors into it (``exec``, ``logs``, ``db``)."""
