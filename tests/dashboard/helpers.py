"""A person using the dashboard through Flask's test client: over https (the session cookie is Secure), from an
address of its own (the sign-in limit counts per address), reading the CSRF token off each page like a browser."""

from __future__ import annotations

import itertools
import re

from app.domain.users import create_user
from app.services import services

BASE = "https://punchpass.test"
_addresses = itertools.count(10)
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class DashboardUser:
    def __init__(self, app, address: str | None = None):
        self.client = app.test_client()
        self.address = address or f"10.9.{next(_addresses) // 250}.{next(_addresses) % 250 + 1}"

    def get(self, path: str, **kwargs):
        return self.client.get(path, base_url=BASE, environ_base={"REMOTE_ADDR": self.address}, **kwargs)

    def post(self, path: str, data: dict | None = None, csrf: bool = True, page: str | None = None, **kwargs):
        """POST a form with the CSRF token of `page` (default: the dashboard's sign-in page, or the page itself)."""
        data = dict(data or {})
        if csrf:
            data.setdefault("csrf_token", self.csrf(page or "/dashboard/sign-in"))
        return self.client.post(path, data=data, base_url=BASE, environ_base={"REMOTE_ADDR": self.address},
                                **kwargs)

    def csrf(self, page: str) -> str:
        match = CSRF.search(self.get(page).get_data(as_text=True))
        assert match, f"no form on {page}"
        return match.group(1)

    def sign_in(self, email: str, password: str):
        return self.post("/dashboard/sign-in", {"email": email, "password": password})

    def sign_in_and_set_password(self, email: str, one_time: str, new: str = "correct horse battery") -> None:
        assert self.sign_in(email, one_time).status_code == 303
        self.set_password(one_time, new)

    def set_password(self, one_time: str, new: str = "correct horse battery") -> None:
        response = self.post("/dashboard/password", {"current_password": one_time, "new_password": new,
                                                      "confirm_password": new}, page="/dashboard/password")
        assert response.status_code == 303, response.get_data(as_text=True)


def make_user(app, merchant_id: int, email: str, role: str = "owner") -> str:
    """The user's one-time password."""
    with app.app_context():
        session = services(app).sessions()
        _user, password = create_user(session, merchant_id, email, role)
        session.commit()
        session.close()
    return password


def signed_in_owner(app, merchant_id: int, email: str, role: str = "owner") -> DashboardUser:
    user = DashboardUser(app)
    user.sign_in_and_set_password(email, make_user(app, merchant_id, email, role))
    return user
