"""Draw a stand-in for the Cookie Theft picture (same story elements, simple shapes, no text).

The real picture (Goodglass & Kaplan, Boston Diagnostic Aphasia Examination) is licensed
and not shipped; this deterministic drawing lets the pipeline run end to end without it.
The pixels hold no letters or digits: a vision model reads text, and a label such as "cookie jar"
would hand it content units and prime "cookie theft". That this is a stand-in is said in the
file name and in the PNG's text chunks instead.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "configs" / "images" / "cookie_theft_standin.png"
SIZE = 896  # the size the experiments were run with
METADATA = {
    "Title": "Cookie Theft stand-in scene",
    "Description": ("A stand-in drawn for the degrader project, NOT the Cookie Theft picture of the Boston "
                    "Diagnostic Aphasia Examination (Goodglass & Kaplan), which is licensed and not shipped."),
    "Source": "scripts/draw_standin_scene.py (degrader)",
}

INK = (40, 30, 25)
WOOD = (176, 122, 72)
DARK_WOOD = (112, 74, 42)
WATER = (90, 160, 225)
SKIN = (240, 200, 165)


def draw_room(d: ImageDraw.ImageDraw) -> None:
    """Wall and tiled floor."""
    d.rectangle((0, 0, SIZE, 680), fill=(246, 236, 204))
    d.rectangle((0, 680, SIZE, SIZE), fill=(205, 178, 140))
    for y in range(680, SIZE, 54):
        d.line((0, y, SIZE, y), fill=(170, 142, 105), width=2)
    for x in range(0, SIZE + 1, 112):
        d.line((x, 680, x + (x - SIZE // 2) // 3, SIZE), fill=(170, 142, 105), width=2)


def draw_cupboard(d: ImageDraw.ImageDraw) -> None:
    """Upper cupboard with its right door swung open."""
    d.rectangle((30, 100, 300, 330), fill=WOOD, outline=INK, width=3)
    d.rectangle((165, 110, 292, 322), fill=DARK_WOOD, outline=INK, width=2)
    d.line((165, 215, 292, 215), fill=INK, width=4)
    d.rectangle((40, 110, 160, 322), outline=INK, width=2)
    d.ellipse((145, 210, 155, 220), fill=INK)
    d.polygon([(300, 100), (362, 82), (362, 350), (300, 330)], fill=WOOD, outline=INK)
    d.ellipse((345, 208, 355, 222), fill=INK)
    for x in (180, 215, 250):
        d.rectangle((x, 180, x + 26, 213), fill=(225, 225, 235), outline=INK)


def draw_cookie_jar(d: ImageDraw.ImageDraw) -> None:
    """Cookie jar on the lower shelf, lid off, cookies heaped in its mouth and one painted on its side."""
    d.rounded_rectangle((180, 245, 286, 322), radius=14, fill=(235, 215, 160), outline=INK, width=2)
    d.ellipse((188, 238, 278, 254), fill=(150, 110, 60), outline=INK, width=2)
    for x in (196, 220, 244):
        draw_cookie(d, x + 8, 240, 9)
    draw_cookie(d, 233, 284, 18)
    d.ellipse((250, 200, 290, 212), fill=(150, 110, 60), outline=INK)


def draw_cookie(d: ImageDraw.ImageDraw, cx: int, cy: int, r: int) -> None:
    """A round biscuit with chocolate chips (the chips tell it from a plate or a coin)."""
    d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(210, 160, 90), outline=INK, width=2)
    for dx, dy in ((-r // 3, -r // 3), (r // 3, -r // 5), (0, r // 3)):
        d.ellipse((cx + dx - 2, cy + dy - 2, cx + dx + 2, cy + dy + 2), fill=(90, 50, 25))


def draw_stool(d: ImageDraw.ImageDraw) -> None:
    """Three-legged stool tipping over: one leg lifted off the floor."""
    d.polygon([(146, 602), (270, 566), (274, 582), (150, 618)], fill=DARK_WOOD, outline=INK)
    d.line((158, 614, 124, 734), fill=DARK_WOOD, width=9)
    d.line((210, 600, 214, 730), fill=DARK_WOOD, width=9)
    d.line((262, 578, 312, 676), fill=DARK_WOOD, width=9)
    d.ellipse((292, 728, 336, 738), fill=(170, 142, 105))
    for r in (16, 27, 38):
        d.arc((312 - r, 676 - r, 312 + r, 676 + r), 95, 175, fill=INK, width=3)


def draw_head(d: ImageDraw.ImageDraw, cx: int, cy: int, r: int, hair: tuple) -> None:
    """Round face with hair cap, eyes and mouth."""
    d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=SKIN, outline=INK, width=2)
    d.chord((cx - r, cy - r, cx + r, cy + r), 180, 360, fill=hair, outline=INK)
    d.ellipse((cx - r // 3 - 2, cy + 2, cx - r // 3 + 2, cy + 6), fill=INK)
    d.ellipse((cx + r // 3 - 2, cy + 2, cx + r // 3 + 2, cy + 6), fill=INK)
    d.arc((cx - r // 3, cy + r // 4, cx + r // 3, cy + r * 2 // 3), 20, 160, fill=INK, width=2)


def draw_limb(d: ImageDraw.ImageDraw, points: list, color: tuple = SKIN, width: int = 9) -> None:
    """Arm or leg as a thick outlined polyline."""
    d.line(points, fill=INK, width=width + 4, joint="curve")
    d.line(points, fill=color, width=width, joint="curve")


def draw_boy(d: ImageDraw.ImageDraw) -> None:
    """Boy standing on the stool, one hand in the jar, the other passing a cookie down."""
    draw_limb(d, [(200, 500), (190, 548), (188, 594)], (60, 80, 150), 12)
    draw_limb(d, [(225, 500), (235, 545), (244, 582)], (60, 80, 150), 12)
    draw_limb(d, [(222, 432), (200, 330), (200, 236), (214, 250)])
    draw_limb(d, [(200, 434), (240, 482), (290, 506)])
    d.polygon([(195, 425), (232, 425), (236, 505), (190, 505)], fill=(60, 150, 90), outline=INK)
    draw_head(d, 214, 398, 24, (120, 70, 30))
    draw_cookie(d, 300, 510, 10)


def draw_girl(d: ImageDraw.ImageDraw) -> None:
    """Girl on the floor reaching up for the cookie, finger to her lips."""
    draw_limb(d, [(368, 690), (364, 762)])
    draw_limb(d, [(388, 690), (392, 762)])
    draw_limb(d, [(370, 612), (336, 570), (306, 528)])
    draw_limb(d, [(384, 614), (400, 648), (384, 602)])
    d.polygon([(364, 600), (390, 600), (413, 695), (342, 695)], fill=(220, 90, 140), outline=INK)
    draw_head(d, 377, 578, 20, (200, 150, 50))
    d.ellipse((350, 570, 362, 590), fill=(200, 150, 50), outline=INK)
    d.ellipse((392, 570, 404, 590), fill=(200, 150, 50), outline=INK)


def draw_window(d: ImageDraw.ImageDraw) -> None:
    """Window frame and panes; the garden is drawn inside it first."""
    d.rectangle((480, 110, 810, 370), fill=(170, 210, 245))
    draw_garden(d)
    d.rectangle((480, 110, 810, 370), outline=(250, 250, 250), width=10)
    d.line((645, 110, 645, 370), fill=(250, 250, 250), width=8)
    d.line((480, 240, 810, 240), fill=(250, 250, 250), width=8)
    d.rectangle((470, 370, 820, 382), fill=(235, 235, 235), outline=INK)


def draw_garden(d: ImageDraw.ImageDraw) -> None:
    """Lawn, path, tree and bushes seen through the window."""
    d.rectangle((480, 270, 810, 370), fill=(110, 180, 80))
    d.polygon([(610, 370), (680, 370), (652, 270), (640, 270)], fill=(215, 195, 150))
    d.rectangle((733, 210, 745, 300), fill=(120, 80, 40))
    d.ellipse((700, 140, 780, 225), fill=(50, 130, 60), outline=(30, 90, 40))
    d.ellipse((500, 275, 560, 315), fill=(60, 140, 60), outline=(30, 90, 40))
    d.ellipse((545, 285, 595, 320), fill=(70, 150, 60), outline=(30, 90, 40))
    for x in range(490, 810, 24):
        d.line((x, 262, x, 282), fill=(250, 250, 250), width=3)
    d.line((480, 268, 810, 268), fill=(250, 250, 250), width=3)


def draw_curtains(d: ImageDraw.ImageDraw) -> None:
    """Curtain rod and two tied-back curtains."""
    d.line((440, 92, 852, 92), fill=INK, width=5)
    for x0, x1, tie in ((446, 520, 488), (846, 772, 810)):
        d.polygon([(x0, 92), (x1, 92), (tie, 250), (x1 - (x1 - x0) // 3, 392), (x0, 392)],
                  fill=(205, 70, 70), outline=INK)
        for k in (1, 2):
            fold = [(x0 + (x1 - x0) * k // 3, 95), (x0 + (tie - x0) * k // 3, 250), (x0 + (x1 - x0) * k // 5, 388)]
            d.line(fold, fill=(150, 40, 40), width=2)
        d.line((tie - 12, 250, tie + 12, 250), fill=(240, 200, 60), width=6)


def draw_counter(d: ImageDraw.ImageDraw) -> None:
    """Counter top and cabinets under the window."""
    d.rectangle((400, 462, SIZE, 486), fill=(210, 210, 215), outline=INK, width=2)
    d.rectangle((404, 486, SIZE - 4, 680), fill=WOOD, outline=INK, width=2)
    for x in range(404, SIZE - 4, 123):
        d.rectangle((x + 6, 498, x + 117, 670), outline=INK, width=2)
        d.ellipse((x + 100, 570, x + 110, 580), fill=INK)


def draw_sink(d: ImageDraw.ImageDraw) -> None:
    """Sink brim-full, tap running."""
    d.rectangle((560, 452, 760, 470), fill=(150, 160, 175), outline=INK, width=2)
    d.rectangle((566, 455, 754, 466), fill=WATER)
    d.line((660, 452, 660, 405, 700, 405, 700, 420), fill=(120, 120, 130), width=8)
    d.rectangle((650, 440, 670, 452), fill=(120, 120, 130), outline=INK)
    for dx in (-4, 0, 4):
        d.line((700 + dx, 424, 700 + dx, 455), fill=WATER, width=2)


def draw_stream(d: ImageDraw.ImageDraw, x: int, width: int, top: int, bottom: int) -> None:
    """One wavy falling stream of water with a highlight line."""
    ys = list(range(top, bottom + 1, 20))
    wave = [(-4, 0, 5, 2, -3, 4, -2, 1)[i % 8] for i in range(len(ys))]
    left = [(x - width // 2 + w, y) for w, y in zip(wave, ys, strict=True)]
    right = [(x + width // 2 + w + (y - top) // 25, y) for w, y in zip(wave, ys, strict=True)]
    d.polygon(left + right[::-1], fill=WATER, outline=(50, 110, 180))
    d.line([(px + width // 2 - 4, py) for px, py in left], fill=(185, 220, 248), width=2)


def draw_water(d: ImageDraw.ImageDraw) -> None:
    """Water spilling over the sink edge, down the cabinets, splashing into a puddle."""
    d.ellipse((380, 720, 820, 830), fill=WATER, outline=(50, 110, 180), width=2)
    d.chord((566, 452, 754, 470), 180, 360, fill=WATER, outline=(50, 110, 180))
    scallops = [(x, 500 + (12 if (x // 19) % 2 else 0)) for x in range(754, 565, -19)]
    d.polygon([(564, 462), (756, 462)] + scallops, fill=WATER, outline=(50, 110, 180))
    for x, w in ((592, 22), (648, 34), (716, 26)):
        draw_stream(d, x, w, 500, 745)
        d.arc((x - 30, 728, x + 30, 758), 200, 340, fill=(230, 240, 255), width=3)
    for x, y in ((555, 560), (770, 540), (548, 690), (790, 690), (610, 790), (700, 805)):
        d.ellipse((x - 5, y - 8, x + 5, y + 8), fill=WATER, outline=(50, 110, 180))


def draw_dishes(d: ImageDraw.ImageDraw) -> None:
    """Stacked plates, a glass and cups on the counter."""
    for i in range(4):
        d.ellipse((782, 448 - 7 * i, 872, 466 - 7 * i), fill=(245, 245, 250), outline=INK)
    for x, top in ((420, 432), (800, 420), (840, 420)):
        d.rectangle((x, top, x + 24, 462), fill=(240, 240, 250), outline=INK, width=2)
        d.arc((x + 18, top + 2, x + 34, top + 22), 270, 90, fill=INK, width=3)
    d.polygon([(768, 400), (778, 400), (790, 462), (760, 462)], fill=(220, 230, 245), outline=INK)


def draw_woman(d: ImageDraw.ImageDraw) -> None:
    """Mother standing in the puddle, drying a plate with a towel, looking away."""
    draw_limb(d, [(478, 700), (474, 782)], SKIN, 11)
    draw_limb(d, [(504, 700), (510, 782)], SKIN, 11)
    d.ellipse((458, 776, 486, 792), fill=INK)
    d.ellipse((500, 776, 528, 792), fill=INK)
    d.polygon([(468, 472), (516, 472), (545, 705), (438, 705)], fill=(90, 110, 190), outline=INK)
    d.polygon([(474, 520), (512, 520), (528, 680), (458, 680)], fill=(250, 250, 250), outline=INK)
    draw_limb(d, [(472, 482), (500, 545), (548, 540)])
    draw_limb(d, [(512, 482), (540, 510), (572, 520)])
    d.ellipse((535, 498, 605, 548), fill=(245, 245, 250), outline=INK, width=2)
    d.polygon([(560, 515), (590, 512), (596, 585), (566, 590)], fill=(240, 220, 90), outline=INK)
    draw_head(d, 492, 444, 27, (90, 50, 30))
    d.ellipse((462, 412, 486, 436), fill=(90, 50, 30), outline=INK)


def draw_scene() -> Image.Image:
    """Compose the whole kitchen, back to front."""
    img = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
    d = ImageDraw.Draw(img)
    draw_room(d)
    draw_window(d)
    draw_curtains(d)
    draw_cupboard(d)
    draw_cookie_jar(d)
    draw_counter(d)
    draw_sink(d)
    draw_water(d)
    draw_dishes(d)
    draw_woman(d)
    draw_stool(d)
    draw_boy(d)
    draw_girl(d)
    return img


def png_info() -> PngInfo:
    """The PNG text chunks that say what the picture is (and is not)."""
    info = PngInfo()
    for key, value in METADATA.items():
        info.add_text(key, value)
    return info


def main(argv: list[str] | None = None) -> None:
    """Draw the scene and write it, with its text chunks, to --out (the committed file by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output PNG path")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    draw_scene().save(args.out, format="PNG", optimize=True, pnginfo=png_info())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
