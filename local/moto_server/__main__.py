"""``python -m local.moto_server -H HOST -p PORT [--functions-port ...]``: see :mod:`local.moto_server`."""

from local.moto_server.server import main

if __name__ == "__main__":
    main()
