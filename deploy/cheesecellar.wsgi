"""mod_wsgi entry point of cheesecellar, written by `cheesecellar deploy-apache`."""

PACKAGES = "/srv/cheesecellar/packages"
PASSWORD_FILE = "/srv/cheesecellar/htpasswd"

from cheesecellar import app  # noqa: E402

application = app(
    root=PACKAGES,
    password_file=PASSWORD_FILE,
    authenticate=["update"],
    redirect_to_fallback=False,
)
