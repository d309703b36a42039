"""Seed a live server for the fuzz run: one program, reward and member with points, made through the API as a
merchant would, so the ids schemathesis puts in paths exist. Prints shell assignments for `.ci/fuzz`.

    python -m tests.fuzz.seed http://127.0.0.1:PORT API_KEY
"""

from __future__ import annotations

import json
import sys
import urllib.request


def call(base_url: str, key: str, method: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(f"{base_url}/api/v1{path}", method=method, data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def seed(base_url: str, key: str) -> dict[str, int]:
    program = call(base_url, key, "POST", "/programs", {
        "name": "Fuzz Coffee", "points_per_unit": "1", "tiers": [{"name": "Gold", "threshold": 500}]})
    reward = call(base_url, key, "POST", f"/programs/{program['id']}/rewards", {"name": "Coffee", "points_cost": 50})
    member = call(base_url, key, "POST", f"/programs/{program['id']}/members", {"name": "Fuzz Member"})
    earned = call(base_url, key, "POST", f"/members/{member['id']}/earn", {"points": 1000, "reference": "seed"})
    return {"PROGRAM_ID": program["id"], "REWARD_ID": reward["id"], "MEMBER_ID": member["id"],
            "TRANSACTION_ID": earned["transaction"]["id"]}


if __name__ == "__main__":
    for name, value in seed(sys.argv[1], sys.argv[2]).items():
        print(f"{name}={value}")
