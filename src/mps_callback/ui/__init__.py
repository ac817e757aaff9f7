"""The dashboard: server-rendered pages under ``/ui/`` over the projections, the journal and the outbox.

Pages are Jinja2 templates; htmx (vendored in ``static/vendor``, no CDN) swaps in the parts
that change, and a little plain JavaScript adds local times, charts and the players. Reading
works without JavaScript. ``routes.py`` puts the pages together; ``session.py`` guards them.
"""
