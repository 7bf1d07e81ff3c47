"""Rebuild tools/dvc_plots/page.html: the HTML page `dvc plots show` fills (`plots.html_template`
in .dvc/config), with Vega, Vega-Lite and vega-embed inlined so that the plots render offline.

    python tools/build_plots_page.py            # needs `npm` and the npm registry

DVC's own page loads vega@5.20.2, vega-lite@5.2.0 and vega-embed@6.18.2 from a CDN and fills
Vega-Lite v5 specs; the versions below are the newest of those major versions when this was
written. Each package's build/*.min.js is inlined, its LICENSE copied to tools/dvc_plots/licenses/.
"""

from __future__ import annotations

import subprocess
import tarfile
import tempfile
from pathlib import Path

PACKAGES = {"vega": "5.33.1", "vega-lite": "5.23.0", "vega-embed": "6.29.0"}
OUT = Path(__file__).resolve().parent / "dvc_plots"

# vega-embed draws on a canvas unless told otherwise; SVG puts every mark in the DOM, where a
# reader's browser tools (and tests/test_dvc_plots.py) can see them.
SVG_BY_DEFAULT = """<script>
(function () {
  var embed = window.vegaEmbed;
  window.vegaEmbed = function (el, spec, opt) {
    return embed(el, spec, Object.assign({renderer: "svg"}, opt || {}));
  };
})();
</script>"""

PAGE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {{refresh_tag}}
    <title>DVC Plot</title>
    <!-- Built by tools/build_plots_page.py from npm: {versions}. Licenses: tools/dvc_plots/licenses/. -->
{scripts}
{svg}
    <style>
        body {{ font-family: system-ui, sans-serif; }}
        table {{ border-spacing: 15px; }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        specs = [f"{name}@{version}" for name, version in PACKAGES.items()]
        subprocess.run(["npm", "pack", "--silent", *specs], cwd=tmp, check=True, capture_output=True)
        scripts, licenses, licenses_text = [], OUT / "licenses", {}
        licenses.mkdir(parents=True, exist_ok=True)
        for name, version in PACKAGES.items():
            with tarfile.open(Path(tmp) / f"{name}-{version}.tgz") as tar:
                js = tar.extractfile(f"package/build/{name}.min.js").read().decode()
                names = tar.getnames()
                license_text = (tar.extractfile("package/LICENSE").read().decode() if "package/LICENSE" in names
                                else None)
            licenses_text[name] = license_text
            # A "</script" inside the code would end the inline element early.
            js = js.replace("</script", "<\\/script")
            scripts.append(f"<script>/* {name}@{version} */\n{js}\n</script>")
    for name, text in licenses_text.items():
        if text is None:  # vega's npm package ships no LICENSE file; its package.json says BSD-3-Clause
            text = (f"{name}@{PACKAGES[name]} is published under BSD-3-Clause (its package.json) by the University "
                    "of Washington Interactive Data Lab, the authors of vega-lite and vega-embed; its npm "
                    "package has no LICENSE file. The text of that licence, as vega-lite ships it:\n\n"
                    + licenses_text["vega-lite"])
        (licenses / f"{name}.LICENSE").write_text(text)
    versions = ", ".join(f"{name}@{version}" for name, version in PACKAGES.items())
    page = PAGE.format(versions=versions, scripts="\n".join(scripts), svg=SVG_BY_DEFAULT)
    if "{plot_divs}" not in page:
        raise AssertionError("DVC needs {plot_divs} in its HTML template")
    (OUT / "page.html").write_text(page)
    print(f"wrote {OUT / 'page.html'} ({len(page) // 1024} KiB): {versions}")


if __name__ == "__main__":
    main()
