#!/usr/bin/env python3
"""Writes a synthetic Google Merchant Center TSV feed of N rows for import benchmarks.

4% of rows are deliberately bad (missing id, negative or non-numeric price, unknown
availability) so the benchmark also exercises the reject path. Deterministic for a given N.
Usage: gen-merchant-feed.py N OUT.tsv
"""
import random
import sys

HEADER = ["id", "title", "description", "link", "image_link", "price", "sale_price", "availability",
          "brand", "gtin", "google_product_category", "product_type", "color", "size", "gender",
          "age_group", "material"]
KINDS = [("Kitchen > Flasks", "Vacuum Flask"), ("Footwear > Women > Flats", "Ballet Flats"),
         ("Watches > Analog", "Analog Watch"), ("Bags > Backpacks", "Laptop Backpack"),
         ("Clothing > Men > Shirts", "Cotton Shirt"), ("Baby Care > Gift Sets", "Newborn Gift Set"),
         ("Mobiles > Accessories > Power Banks", "Power Bank"), ("Home Decor > Lamps", "Table Lamp")]
COLORS = ["red", "blue", "black", "white", "green", "silver", "pink", "grey"]
BRANDS = ["Aurelle", "ThermaNest", "Kalpa", "Novaro", "Tiffinwala", "Rangrez", "Pulsefit", "Lumora"]
AVAIL = ["in stock", "in stock", "in stock", "out of stock", "preorder", "backorder"]


def row(i, rnd):
    category, noun = KINDS[i % len(KINDS)]
    color, brand = rnd.choice(COLORS), rnd.choice(BRANDS)
    price = rnd.randint(149, 9999)
    sale = f"{int(price * 0.8)}.00 INR" if i % 3 == 0 else ""
    r = [f"GEN-{i:07d}", f"{brand} {color.title()} {noun} {i}",
         f"A {color} {noun.lower()} by {brand}, item {i}. " + "Durable and easy to care for. " * 3,
         f"https://shop.example/p/{i}", f"https://shop.example/img/{i}.jpg", f"{price}.00 INR", sale,
         rnd.choice(AVAIL), brand, f"890{i:010d}", "", category, color, "M", "unisex", "adult", "cotton"]
    bad = i % 100
    if bad == 17:
        r[0] = ""
    elif bad == 42:
        r[5] = "-10 INR"
    elif bad == 63:
        r[5] = "ask us"
    elif bad == 88:
        r[7] = "maybe"
    return r


def main():
    n, out = int(sys.argv[1]), sys.argv[2]
    rnd = random.Random(n)
    with open(out, "w", encoding="utf-8") as f:
        f.write("\t".join(HEADER) + "\n")
        for i in range(n):
            f.write("\t".join(row(i, rnd)) + "\n")


if __name__ == "__main__":
    main()
