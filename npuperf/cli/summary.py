"""``npuperf summary RESULTS.json [...]``: markdown for ``$GITHUB_STEP_SUMMARY`` and, with
``--html``, the night's page: one results file per device, put side by side."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from npuperf import atomic
from npuperf.cli.runs import CliError, read_results
from npuperf.report import markdown, page

_SAFE_URL = re.compile(r"^(https?://|(?![a-zA-Z][a-zA-Z0-9+.-]*:))")  # http(s), or a relative path


def parse_link(text: str) -> tuple[str, str]:
    """``NAME=URL`` as given to --link; only http(s) URLs and relative paths are accepted."""
    name, sep, url = text.partition("=")
    if not sep or not name.strip() or not url.strip():
        raise CliError(f"--link {text!r}: expected NAME=URL, e.g. 'HTML report=https://...'")
    if not _SAFE_URL.match(url.strip()):
        raise CliError(f"--link {text!r}: the URL must be http(s):// or a relative path")
    return name.strip(), url.strip()


def nights(paths: Sequence[Path]) -> list[markdown.Night]:
    """The results files with a label each; labels that repeat get the file's folder added."""
    docs = [(p, read_results(p)) for p in paths]
    labels = [markdown.label(doc) for _, doc in docs]
    out = []
    for (path, doc), name in zip(docs, labels, strict=True):
        unique = labels.count(name) == 1
        out.append(markdown.Night(name if unique else f"{name} [{path.parent.name or path.stem}]", doc))
    return out


def summary(paths: Sequence[Path], links: Sequence[str], output: Path | None, html: Path | None) -> list[str]:
    """The markdown (printed, or appended to ``output``) and the night's page when asked."""
    runs = nights(paths)
    try:
        text = markdown.summary(runs, [parse_link(link) for link in links])
        night_page = page.night([(n.label, n.doc) for n in runs]) if html is not None else None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CliError(f"a results file is malformed ({exc!r}); it was written by another tool or cut short") from exc
    lines = []
    if output is not None:
        try:
            with output.open("a", encoding="utf-8") as f:  # $GITHUB_STEP_SUMMARY is appended to
                f.write(text + "\n")
        except OSError as exc:
            raise CliError(f"--output {output}: cannot append to it ({exc.strerror})") from exc
        lines.append(f"summary appended to {output}")
    else:
        lines.append(text)
    if html is not None and night_page is not None:
        try:
            atomic.write_text(html, night_page)
        except OSError as exc:
            raise CliError(f"--html {html}: cannot write it ({exc.strerror})") from exc
        lines.append(f"night's page: {html}")
    return lines
