"""JSON that can sit inside an HTML <script> element whatever strings the chain put in it."""

from __future__ import annotations

import json
from typing import Any

from markupsafe import Markup

# Inside <script> the HTML parser only looks for `</script` and `<!--`; escaping every `<`, `>`
# and `&` as a JSON \u escape makes both impossible while JSON.parse still yields the same
# string. U+2028/2029 are escaped too so the text stays valid if ever evaluated as JS.
_ESCAPES = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def script_json(value: Any) -> Markup:
    """JSON for a `<script type="application/json">` element; safe to emit unescaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    # Markup: already safe for this context, and HTML-escaping would corrupt the JSON.
    return Markup(text.translate(_ESCAPES))
