"""``vanishing explore``: a local page to play with descent, the gradient through time and
France -> French, every number computed by the library.

- :mod:`~vanishing.explore.server`: the HTTP server (loopback only, the page's assets
  from a fixed allowlist, Host/Origin checks, bounded bodies, a time cap per request);
- :mod:`~vanishing.explore.api`: its routes;
- :mod:`~vanishing.explore.descent_panel`, :mod:`~vanishing.explore.time_panel`,
  :mod:`~vanishing.explore.words_panel`: one panel each, a library call and its numbers
  as plain JSON data;
- :mod:`~vanishing.explore.training`: training the demo models in the background;
- :mod:`~vanishing.explore.params`: the bounded checks of every request field;
- ``static/``: the page (HTML, CSS and hand-written SVG drawing in JavaScript; no
  library, nothing fetched from elsewhere).
"""

from .server import ExploreServer, make_server

__all__ = ["ExploreServer", "make_server"]
