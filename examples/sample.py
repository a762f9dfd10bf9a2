"""A small inventory module to try agentls on: it has a bug or two for the reviewer to find."""

import json


def load_inventory(path):
    with open(path) as f:
        return json.load(f)


def total_value(items):
    total = 0
    for item in items:
        total += item["price"] * item["quantity"]
    return total


def restock(items, name, amount):
    for item in items:
        if item["name"] == name:
            item["quantity"] = item["quantity"] + amount
    return items


def average_price(items):
    return sum(item["price"] for item in items) / len(items)
