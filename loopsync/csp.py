"""The two exceptions to the site's Content-Security-Policy (CONTENT_SECURITY_POLICY in settings.py), as
view decorators. Both only add style sources; scripts come from this site on every page.

**Email previews.** A page that shows an email's live preview puts the rendered email in
`<iframe sandbox srcdoc=…>`. A srcdoc document has no response of its own, so it inherits the policy of the
page around it, and an email is styled the only way mail clients accept: a `<style>` block and `style=""`
attributes (loops/templates/loops/email.html, the button style in loops/rendering.py), with images from
anywhere. Under the site-wide `style-src 'self'` the preview would show unstyled. Hashes cannot help: the
preview is replaced by htmx as the user types, long after the page's policy was fixed, and what users type
ends up in the email's markup. So those pages add `'unsafe-inline'` to style-src and `https:` to img-src;
the iframe's sandbox (no allow-scripts) forbids script in the email regardless.

**ReDoc** (/api/redoc/) renders with styled-components, which writes `<style>` elements at run time, and
runs its search in a worker made from a blob: URL. Its page shows only the API's own schema. Its footer
logo, from Redocly's CDN, stays blocked: the docs make no third-party requests.
"""

from csp.constants import SELF, UNSAFE_INLINE
from csp.decorators import csp_update

EMAIL_PREVIEW_POLICY = {"style-src": [UNSAFE_INLINE], "img-src": ["https:"]}
REDOC_POLICY = {"style-src": [UNSAFE_INLINE], "worker-src": [SELF, "blob:"]}

email_preview_policy = csp_update(EMAIL_PREVIEW_POLICY)
"""For views whose page embeds loops/_preview.html (the htmx partial itself needs nothing: a fragment
swapped into a page lives under that page's policy)."""

redoc_policy = csp_update(REDOC_POLICY)
