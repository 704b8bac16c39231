"""An example package: publish it to a cheesecellar index, install it, say hello."""


def hello_world() -> None:
    """Print a greeting, to show the package installed from the index works."""
    print("hello world")
