"""Sign-in: failed attempts are throttled; OpenID Connect maps the provider's groups to roles.

The OpenID Connect provider is a stub HTTP server (its authorize step is the browser's, which
the test plays): the product's whole code flow runs against it over real HTTP, token exchange,
JWKS signature check and userinfo included. A real Entra ID / Okta / Keycloak cannot run here.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth.models import User

from dashboard.access.roles import OPERATOR_GROUP, VIEWER_GROUP, is_operator

pytestmark = pytest.mark.django_db

# -- throttling ---------------------------------------------------------------------------


def sign_in(client: Any, username: str, password: str) -> Any:
    return client.post("/login/", {"username": username, "password": password})


def test_a_user_is_locked_out_after_too_many_failures_even_with_the_right_password(client: Any, settings: Any) -> None:
    User.objects.create_user("ops", password="right-password-123")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(client, "ops", "wrong").status_code == 200  # the page again, with its error
    locked = sign_in(client, "ops", "wrong")
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.content.decode()
    assert sign_in(client, "ops", "right-password-123").status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_good_sign_in_before_the_limit_resets_the_count(client: Any, settings: Any) -> None:
    User.objects.create_user("ops", password="right-password-123")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(client, "ops", "wrong")
    assert sign_in(client, "ops", "right-password-123").status_code == 302
    client.logout()
    assert sign_in(client, "ops", "wrong").status_code == 200  # counting starts again


# -- OpenID Connect -------------------------------------------------------------------------

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KID = "stub-key-1"


class Provider:
    """What the stub provider answers: the claims of the user who signs in next."""

    def __init__(self) -> None:
        self.claims: dict[str, Any] = {}
        self.nonce = ""
        self.token_requests: list[dict[str, list[str]]] = []
        self.signing_key: Any = KEY  # the JWKS always publishes KEY's public half


def handler_for(provider: Provider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return None

        def answer(self, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            form = parse_qs(self.rfile.read(length).decode())
            provider.token_requests.append(form)
            now = int(time.time())
            id_token = jwt.encode(
                {"iss": "https://idp.example", "aud": "wnd", "iat": now, "exp": now + 300, "nonce": provider.nonce,
                 **provider.claims},
                provider.signing_key,
                algorithm="RS256",
                headers={"kid": KID},
            )  # fmt: skip
            self.answer({"access_token": "stub-access-token", "id_token": id_token, "token_type": "Bearer"})

        def do_GET(self) -> None:
            if self.path == "/keys":
                jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
                self.answer({"keys": [{**jwk, "kid": KID, "alg": "RS256", "use": "sig"}]})
            else:  # /userinfo
                self.answer({"sub": provider.claims.get("sub"), "email": provider.claims.get("email")})

    return Handler


@pytest.fixture
def provider(settings: Any) -> Iterator[Provider]:
    state = Provider()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    settings.WND_OIDC_ENABLED = True
    settings.OIDC_RP_CLIENT_ID = "wnd"
    settings.OIDC_RP_CLIENT_SECRET = "stub-client-secret"
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = "https://idp.example/authorize"
    settings.OIDC_OP_TOKEN_ENDPOINT = f"{base}/token"
    settings.OIDC_OP_USER_ENDPOINT = f"{base}/userinfo"
    settings.OIDC_OP_JWKS_ENDPOINT = f"{base}/keys"
    settings.WND_OIDC_OPERATOR_GROUPS = ["k8s-ops"]
    settings.WND_OIDC_VIEWER_GROUPS = ["k8s-view", "/support"]
    settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS, "dashboard.access.oidc.RoleMappingBackend"]
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def sso(client: Any, provider: Provider, **claims: Any) -> Any:
    """Start the sign-in, play the provider's authorize step, come back to the callback."""
    start = client.get("/oidc/authenticate/")
    assert start.status_code == 302
    query = parse_qs(urlsplit(start["Location"]).query)
    assert start["Location"].startswith("https://idp.example/authorize?")
    provider.nonce = query["nonce"][0]
    provider.claims = {"sub": "00u1abc", "email": "ana@example.com", **claims}
    return client.get("/oidc/callback/", {"code": "stub-code", "state": query["state"][0]})


def test_the_sign_in_page_offers_single_sign_on_when_configured(client: Any, provider: Provider) -> None:
    assert 'href="/oidc/authenticate/"' in client.get("/login/").content.decode()


def test_without_configuration_single_sign_on_is_absent(client: Any) -> None:
    assert "/oidc/authenticate/" not in client.get("/login/").content.decode()
    assert client.get("/oidc/authenticate/").status_code == 404


def test_a_member_of_an_operator_group_signs_in_as_an_operator(client: Any, provider: Provider) -> None:
    response = sso(client, provider, preferred_username="ana@corp.example", groups=["k8s-ops", "everyone"])
    assert response.status_code == 302 and response["Location"] == "/"
    user = User.objects.get(username="ana@corp.example")
    assert is_operator(user) and not user.is_staff and not user.is_superuser
    assert client.session["_auth_user_id"] == str(user.pk)
    assert provider.token_requests[0]["code"] == ["stub-code"]
    assert provider.token_requests[0]["client_secret"] == ["stub-client-secret"]


def test_a_keycloak_group_path_maps_to_the_viewer_role(client: Any, provider: Provider) -> None:
    sso(client, provider, preferred_username="bo", groups=["/support"])
    user = User.objects.get(username="bo")
    assert not is_operator(user)
    assert list(user.groups.values_list("name", flat=True)) == [VIEWER_GROUP]


def test_someone_in_no_mapped_group_is_refused(client: Any, provider: Provider) -> None:
    response = sso(client, provider, preferred_username="eve", groups=["marketing"])
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session
    assert not User.objects.filter(username="eve").exists()


def test_the_role_follows_the_provider_at_each_sign_in(client: Any, provider: Provider) -> None:
    sso(client, provider, preferred_username="ana", groups=["k8s-ops"])
    assert is_operator(User.objects.get(username="ana"))
    client.logout()
    sso(client, provider, preferred_username="ana", groups=["k8s-view"])
    user = User.objects.get(username="ana")
    assert not is_operator(user)
    assert set(user.groups.values_list("name", flat=True)) == {VIEWER_GROUP}
    assert not user.groups.filter(name=OPERATOR_GROUP).exists()


def test_a_token_signed_by_another_key_is_refused(client: Any, provider: Provider) -> None:
    provider.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response = sso(client, provider, preferred_username="mallory", groups=["k8s-ops"])
    assert response.status_code in (302, 400)
    assert "_auth_user_id" not in client.session
    assert not User.objects.filter(username="mallory").exists()
