"""mod_wsgi entry point of cheesecellar, written by `cheesecellar deploy-apache`."""

PACKAGES = "/srv/cheesecellar/packages"
PASSWORD_FILE = "/srv/cheesecellar/htpasswd"

import gc  # noqa: E402

from cheesecellar import app  # noqa: E402

application = app(
    root=PACKAGES,
    password_file=PASSWORD_FILE,
    authenticate=["update"],
    redirect_to_fallback=False,
)
# What start-up loaded (the list of files on disk, the records kept) lives as long as the
# process: keep the cyclic garbage collector's full passes from walking it all (long pauses
# with many files).
gc.freeze()
