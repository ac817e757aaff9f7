"""One module a page: each has a ``router`` whose routes ``ui/routes.py`` guards with the login."""
