"""Keys and tokens never leak into logs or responses."""

import io
import json
import logging
import zipfile

from tests.factories import auth, earn, make_member, make_merchant, make_program


def test_api_keys_and_pass_tokens_stay_out_of_logs_and_responses(app, client, caplog):
    caplog.set_level(logging.DEBUG)
    _, key = make_merchant(app)
    program = make_program(client, key)
    member = make_member(client, key, program["id"])
    earn(client, key, member["id"], points=5)
    client.get(f"/api/v1/members/{member['id']}", headers=auth(key + "-wrong"))
    pkpass = client.get(f"/api/v1/members/{member['id']}/pass.pkpass", headers=auth(key)).data
    apple_token = json.loads(zipfile.ZipFile(io.BytesIO(pkpass)).read("pass.json"))["authenticationToken"]
    bodies = json.dumps([client.get(f"/api/v1/members/{member['id']}", headers=auth(key)).get_json(),
                         client.get(f"/api/v1/programs/{program['id']}", headers=auth(key)).get_json()])
    logs = "\n".join(record.getMessage() for record in caplog.records)
    for secret in (key, key[12:], apple_token):
        assert secret not in logs
        assert secret not in bodies
