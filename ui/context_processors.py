"""What the header of every page needs."""

from ui import selectors


def ui(request) -> dict:
    # Admin and API pages render templates too: keep this to one cheap lookup, done lazily.
    return {"signup_open": selectors.user_creation_allowed}
