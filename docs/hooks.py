"""MkDocs hook: the command-line reference page is made from the commands' definitions at build
time (``layerforge.cli.reference``), so it cannot drift from the program."""

MARKER = "<!-- the commands, generated -->"


def on_page_markdown(markdown, page, config, files):
    if MARKER not in markdown:
        return markdown
    from layerforge.cli.reference import markdown as reference

    return markdown.replace(MARKER, reference())
