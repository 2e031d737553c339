"""The one jinja2 environment of the HTML the project writes (npuperf/report/templates).

It autoescapes, so nothing a template is given can become markup, and an undefined name is an
error rather than an empty string.
"""

from __future__ import annotations

import jinja2

ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("npuperf.report", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
