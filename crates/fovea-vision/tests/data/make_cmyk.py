"""Regenerates the CMYK fixtures `image` cannot encode itself. Run once: python3 make_cmyk.py

Needs Pillow (`pip install pillow`). A 32x32 image in four 16x16 quadrants:
top-left red, top-right green, bottom-left blue, bottom-right white, converted with Pillow's
naive RGB->CMYK (C=255-R, M=255-G, Y=255-B, K=0). Pillow writes CMYK JPEGs with an Adobe APP14
marker and inverted samples, as Photoshop does, which is the case worth testing.
"""
from PIL import Image

img = Image.new("RGB", (32, 32))
px = img.load()
for y in range(32):
    for x in range(32):
        px[x, y] = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)][(y // 16) * 2 + x // 16]
cmyk = img.convert("CMYK")
cmyk.save("cmyk.jpg", quality=95, subsampling=0)
cmyk.save("cmyk.tif")
