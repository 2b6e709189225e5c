"""Math in nbconvert's HTML as MathML, rendered by the browser itself (no MathJax, no CDN).

nbconvert leaves ``$...$`` in the page for MathJax, which it loads from a CDN: offline, a
feedback page or Formgrader shows raw TeX. :func:`markdown2html` is nbconvert's own Markdown
renderer with its math handlers replaced; ``nbgrader_config.py`` installs it as the
``markdown2html`` filter of every ``HTMLExporter`` (Formgrader, ``generate_feedback``)::

    c.HTMLExporter.filters = {"markdown2html": "instructor.plugins.mathml.markdown2html"}

Math that :mod:`latex2mathml` cannot read stays as TeX (in a ``<code>``), never an error.
"""

from __future__ import annotations

import html

import jinja2
from latex2mathml.converter import convert
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath


def tex_to_mathml(tex: str, *, display: bool) -> str:
    """``tex`` as a ``<math>`` element (a block when ``display``); unreadable TeX as code."""
    try:
        return convert(tex, display="block" if display else "inline")
    except Exception:  # latex2mathml raises many kinds; the page must still render
        return f"<code class='tex'>{html.escape(tex)}</code>"


class MathMLRenderer(IPythonRenderer):
    """nbconvert's renderer (images, anchors, code highlighting) with math as MathML."""

    def inline_math(self, body: str) -> str:
        return tex_to_mathml(body, display=False)

    def block_math(self, body: str) -> str:
        return tex_to_mathml(body, display=True)

    def latex_environment(self, name: str, body: str) -> str:
        return tex_to_mathml(f"\\begin{{{name}}}{body}\\end{{{name}}}", display=True)


@jinja2.pass_context
def markdown2html(context, source: str) -> str:
    """The ``markdown2html`` Jinja filter of nbconvert's ``HTMLExporter`` (same arguments: the
    cell's attachments and the notebook's path come from the template context)."""
    cell = context.get("cell", {})
    path = context.get("resources", {}).get("metadata", {}).get("path", "")
    renderer = MathMLRenderer(escape=False, attachments=cell.get("attachments", {}), path=path)
    return MarkdownWithMath(renderer=renderer).render(source)
