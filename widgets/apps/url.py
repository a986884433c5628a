"""A page's selection mirrored in its URL (``/grokking?run=<id>``), with an error for a bad link."""
from __future__ import annotations

import panel as pn
import param


def sync_url(view: param.Parameterized, parameter: str, key: str = "run", what: str = "run") -> pn.pane.Alert:
    """Mirror ``view.<parameter>`` in the query string as ``?<key>=``; return an alert, hidden
    unless the URL asked for a value this page cannot show (unknown id, or no data for this page).

    Outside a server session (tests, notebooks) nothing is synced and the alert stays hidden.
    """
    alert = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")
    if pn.state.curdoc is None or pn.state.curdoc.session_context is None:
        return alert
    asked = [v.decode() for v in pn.state.session_args.get(key, [])]
    objects = [o for o in view.param[parameter].objects or [] if o is not None]
    if asked and asked[0] in objects:
        setattr(view, parameter, asked[0])
    elif asked:
        known = ", ".join(f"`{o}`" for o in objects[:8]) + (" …" if len(objects) > 8 else "")
        alert.object = (f"**This page cannot show {what} `{asked[0]}`** from the link: it is not in this data "
                        f"root or has no data for this page. Showing `{getattr(view, parameter)}` instead; "
                        f"this page can show {known or 'nothing yet'}.")
        alert.visible = True
    pn.state.location.sync(view, {parameter: key})
    return alert
