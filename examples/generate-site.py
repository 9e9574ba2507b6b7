#!/usr/bin/env python3
"""Generates examples/site: a small but realistic site for the demo, tests and benchmarks.

Seven pages share a stylesheet, a script, a web font and a logo; each page has its own images;
the shared stylesheet and the blog stylesheet reference images themselves (page -> CSS -> image).
Deterministic: running it again produces the same bytes.
"""
import os, random, shutil, struct, zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "site")
FONT_SRC = os.environ.get("FONT_SRC", "")
rng = random.Random(42)

def png(path, w, h, noise):
    """A valid PNG: a gradient with a share of noise so it does not compress to nothing."""
    raw = bytearray()
    for y in range(h):
        raw.append(0)
        for x in range(w):
            if rng.random() < noise:
                raw += bytes((rng.randrange(256), rng.randrange(256), rng.randrange(256)))
            else:
                raw += bytes(((x * 255) // max(w - 1, 1), (y * 255) // max(h - 1, 1), 128))
    def chunk(t, d):
        c = struct.pack(">I", len(d)) + t + d
        return c + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + chunk(b"IEND", b"")
    write(path, data)

def write(path, data):
    full = os.path.join(ROOT, path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())

WORDS = ("push learn asset page cache browser stream latency round trip server client digest "
         "hint preload style script font image header render paint network bytes").split()

def para(n):
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."

PAGES = [
    ("/index.html", "Home", ["/img/home-hero.png", "/img/home-feature.png"], []),
    ("/about.html", "About us", ["/img/about-team.png"], []),
    ("/products.html", "Products", ["/img/product-1.png", "/img/product-2.png", "/img/product-3.png"], []),
    ("/contact.html", "Contact", ["/img/contact-map.png"], []),
    ("/blog/index.html", "Blog", ["/img/blog-banner.png"], ["/css/blog.css"]),
    ("/blog/post-1.html", "Why push is hard", ["/img/post-1.png"], ["/css/blog.css"]),
    ("/blog/post-2.html", "Early Hints in practice", ["/img/post-2.png", "/img/post-2-chart.png"], ["/css/blog.css"]),
]

def page(path, title, images, extra_css):
    links = "".join(f'    <link rel="stylesheet" href="{c}">\n' for c in ["/css/site.css"] + extra_css)
    nav = " | ".join(f'<a href="{p.replace("index.html", "")}">{t}</a>' for p, t, _, _ in PAGES)
    imgs = "".join(f'    <figure><img src="{i}" alt="{title} illustration" width="480" height="270"></figure>\n    <p>{para(60)}</p>\n' for i in images)
    body = "".join(f"    <p>{para(70)}</p>\n" for _ in range(4))
    return f"""<!doctype html>
<html lang="en">
<head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>{title} - Example Co.</title>
{links}    <script src="/js/app.js" defer></script>
</head>
<body>
  <header><img class="logo" src="/img/logo.svg" alt="Example Co." width="160" height="40"><nav>{nav}</nav></header>
  <main>
    <h1>{title}</h1>
{body}{imgs}  </main>
  <footer><p>Example Co. - a site for pushwise's demo, tests and benchmarks.</p></footer>
</body>
</html>
"""

def main():
    if os.path.isdir(ROOT):
        shutil.rmtree(ROOT)
    for p, t, imgs, css in PAGES:
        write(p, page(p, t, imgs, css))
    write("/css/site.css", """/* Shared stylesheet: references the font and two images itself (page -> CSS -> asset). */
@font-face { font-family: "Open Sans"; font-weight: 300; src: url(/fonts/open-sans-300.woff2) format("woff2"); font-display: swap; }
body { font-family: "Open Sans", sans-serif; margin: 0; color: #222; }
header { background: #f4f4f4 url(/img/header-bg.png) repeat-x; padding: 12px 24px; display: flex; gap: 24px; align-items: center; }
nav a { margin-right: 8px; }
main { max-width: 760px; margin: 0 auto; padding: 24px; }
figure { margin: 16px 0; }
footer { border-top: 1px solid #ddd; padding: 12px 24px; background: url(/img/footer-pattern.png); }
""" + "".join(f".u{i} {{ margin: {i}px; }}\n" for i in range(200)))
    write("/css/blog.css", """/* Blog stylesheet: only blog pages use it; it pulls its own background image. */
main { background: url(/img/blog-pattern.png) top right no-repeat; }
article h2 { font-weight: 300; }
""" + "".join(f".b{i} {{ padding: {i}px; }}\n" for i in range(60)))
    write("/js/app.js", "// Shared script.\n(function () {\n  'use strict';\n" + "".join(
        f"  function f{i}(x) {{ return x * {i} + {rng.randrange(1000)}; }}\n" for i in range(300)) +
        "  document.documentElement.classList.add('js');\n})();\n")
    write("/img/logo.svg", """<svg xmlns="http://www.w3.org/2000/svg" width="160" height="40" viewBox="0 0 160 40">
<rect width="160" height="40" rx="6" fill="#2b5797"/><text x="14" y="27" font-family="sans-serif" font-size="18" fill="white">Example Co.</text>
</svg>
""")
    png("/img/header-bg.png", 8, 64, 0.3)
    png("/img/footer-pattern.png", 32, 32, 0.5)
    png("/img/blog-pattern.png", 96, 96, 0.3)
    sizes = {"home-hero": (240, 120, 0.25)}
    for _, _, imgs, _ in PAGES:
        for i in imgs:
            name = os.path.splitext(os.path.basename(i))[0]
            w, h, n = sizes.get(name, (160, 90, 0.2))
            png(i, w, h, n)
    if FONT_SRC and os.path.exists(FONT_SRC):
        with open(FONT_SRC, "rb") as f:
            write("/fonts/open-sans-300.woff2", f.read())

if __name__ == "__main__":
    main()
