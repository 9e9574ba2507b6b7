#!/usr/bin/env python3
"""Writes a synthetic static site of N pages in sections, for benchmarks at production scale.

    python3 bench/gensite.py DIR [pages]

Every page links the site-wide CSS and JS, its section's CSS, and a few images of its own; the
site CSS references a font and a background image (found only through CSS). Files are small: the
analyzer benchmarks need the shape (thousands of pages, shared and page-own assets), not bytes.
"""
import os
import sys

root = sys.argv[1]
pages = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
sections = ["blog", "docs", "shop", "news", "help", "talks"]


def write(path, text):
    full = os.path.join(root, path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as f:
        f.write(text)


write("/css/site.css", "body{background:url(/img/bg.png)}@font-face{src:url(/fonts/f.woff2)}" + " " * 4000)
write("/js/app.js", "console.log(1);" + " " * 9000)
write("/img/bg.png", "x" * 2000)
write("/fonts/f.woff2", "x" * 20000)
write("/img/logo.svg", "<svg/>" + " " * 1500)
for s in sections:
    write(f"/css/{s}.css", f".{s}{{}}" + " " * 2500)
for i in range(pages):
    s = sections[i % len(sections)]
    own = "".join(f'<img src="/img/{s}/{i}-{k}.png">' for k in range(i % 4))
    for k in range(i % 4):
        write(f"/img/{s}/{i}-{k}.png", "x" * (3000 + 500 * k))
    path = "/index.html" if i == 0 else f"/{s}/p{i}.html"
    write(path, f"""<!doctype html><html><head><title>{i}</title>
<link rel="stylesheet" href="/css/site.css"><link rel="stylesheet" href="/css/{s}.css">
<script src="/js/app.js"></script></head><body><img src="/img/logo.svg">{own}
<a href="/{s}/p{(i + 1) % pages}.html">next</a></body></html>
""")
print(f"{pages} pages under {root}")
