"""The CLI's commands, one module each.

Each module exposes ``register(subparsers)``: it adds its parser and sets ``func`` to its handler,
``handler(args, target, out, err) -> exit code``. ``__main__`` adds the options that say where the
pipeline is to every command and resolves them into the ``Target`` the handler receives.
"""
