"""The portal (门户): the pages `shulian serve` serves at ``/`` for citizens, departments and auditors.

Plain server-rendered HTML (``templates/``, strings from ``i18n/``, zh-CN first) and small ES modules
(``static/js/``) that sign every API request with the user's own key (RFC 9421) and verify, in the
page, every checkpoint signature, inclusion and consistency proof and sealed release they show.
Nothing is loaded from another origin. ``data`` holds the few read models the pages need beyond
``/v1`` (no HTTP in it); ``demo`` the development-only demo sign-in.
"""
