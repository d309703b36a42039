"""A yardstick, not the app: the earn's writes in a bare WSGI app on psycopg, for bench/earn.py to run under the
same gunicorn (`gunicorn bench.baseline_app:app`, the shipped gunicorn.conf.py) and wrk as the real one.

POST /api/v1/members/<id>/earn {"points": n}: API-key lookup, member update, ledger insert, idempotency insert
(with the answer), one commit, JSON answer. No Flask, no ORM, no validation beyond int(); no update tag, outbox
row or push (the app writes those too). One connection per gunicorn thread.
"""

import hashlib
import json
import os
import threading

import psycopg

URL = os.environ["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://", 1)
_local = threading.local()


def app(environ, start_response):
    parts = environ["PATH_INFO"].split("/")  # ['', 'api', 'v1', 'members', '<id>', 'earn']
    if parts == ["", "healthz"]:
        return _answer(start_response, "200 OK", {"status": "ok"})
    if environ["REQUEST_METHOD"] != "POST" or len(parts) != 6 or parts[5] != "earn" or not parts[4].isdigit():
        return _answer(start_response, "404 Not Found", {"title": "Not Found"})
    points = int(json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))["points"])
    token = environ.get("HTTP_AUTHORIZATION", "").removeprefix("Bearer ")
    conn = getattr(_local, "conn", None) or _connect()
    with conn.cursor() as cursor:
        cursor.execute("SELECT merchant_id FROM api_keys WHERE key_hash = %s AND revoked_at IS NULL",
                       (hashlib.sha256(token.encode()).hexdigest(),))
        if (key := cursor.fetchone()) is None:
            conn.rollback()
            return _answer(start_response, "401 Unauthorized", {"title": "Unauthorized"})
        cursor.execute("UPDATE members SET points_balance = points_balance + %s, lifetime_points = lifetime_points"
                       " + %s WHERE id = %s AND merchant_id = %s RETURNING points_balance",
                       (points, points, int(parts[4]), key[0]))
        if (member := cursor.fetchone()) is None:
            conn.rollback()
            return _answer(start_response, "404 Not Found", {"title": "No such member"})
        cursor.execute("INSERT INTO ledger_entries (member_id, merchant_id, kind, points, balance_after, shortfall,"
                       " created_at) VALUES (%s, %s, 'earn', %s, %s, 0, now()) RETURNING id",
                       (int(parts[4]), key[0], points, member[0]))
        body = {"transaction": {"id": cursor.fetchone()[0], "points": points}, "points_balance": member[0]}
        cursor.execute("INSERT INTO idempotency_records (merchant_id, endpoint, key, request_hash, status_code,"
                       " response_body, created_at) VALUES (%s, 'POST baseline earn', %s, '', 201, %s, now())",
                       (key[0], environ.get("HTTP_IDEMPOTENCY_KEY", ""), json.dumps(body)))
    conn.commit()
    return _answer(start_response, "201 Created", body)


def _connect() -> psycopg.Connection:
    _local.conn = psycopg.connect(URL)
    return _local.conn


def _answer(start_response, status: str, body: dict) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
